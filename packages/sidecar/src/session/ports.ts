// What a session needs from the rest of the sidecar, as narrow interfaces, so
// the micro-turn loop is tested without a network and the background and
// tool machinery can change behind them.
import type { BackgroundUpdate, DeliveryMode, MovedTask, PendingToolCall, ServerEvent, ToolSpec } from "@microturn/protocol";

/** One event the session sends its client, before the outbox numbers it. */
export type ServerPayload = NonNullable<ServerEvent["event"]>;

/** One line of the conversation, as the background model's context package sees it. */
export interface ConversationEntry {
  role: "user" | "assistant" | "tool" | "background" | "system";
  text: string;
  startMs: number;
  seq?: number;
}

/** Input time as models read it: `12.4s` since the session began. */
export function formatSeconds(ms: number): string {
  return `${(Math.max(0, ms) / 1000).toFixed(1)}s`;
}

/** A conversation line as models read it: `[12.4s] user: text`. */
export function formatEntry(entry: ConversationEntry): string {
  return `[${formatSeconds(entry.startMs)}] ${entry.role}: ${entry.text}`;
}

export interface DelegateRequest {
  taskId?: string;
  task: string;
  delivery: DeliveryMode;
  timeoutMs?: number;
  fromModel: boolean;
  conversation: ConversationEntry[];
}

/** The session's view of its background tasks. Updates arrive through `onUpdate`. */
export interface SessionBackground {
  /** Starts a task and returns its id; never blocks on the model. */
  start(request: DelegateRequest): string;
  /** Cancels a task; throws a NOT_FOUND SessionFault for an unknown id. */
  cancel(taskId: string): void;
  cancelAll(): void;
  readonly running: number;
  onUpdate(listener: (update: BackgroundUpdate) => void): void;
  /** Task ids generated so far (the model's delegate calls): a moved session's ids go on from there. */
  readonly idsMade: number;
  /**
   * The session moves to another sidecar: every unfinished task stops without
   * an update and is returned, for the taker to run again from the start.
   */
  release(): MovedTaskState[];
  /** Runs the tasks of a session that moved here again, their ids kept; ids go on after `idsMade`. */
  adopt(idsMade: number, tasks: readonly MovedTaskState[], conversation: ConversationEntry[]): void;
}

/** A background task that was unfinished when its session moved (handoff.proto's MovedTask). */
export type MovedTaskState = MovedTask;

/** A client tool call sent and not yet answered (handoff.proto's PendingToolCall). */
export type PendingCallState = PendingToolCall;

/** A tool call found in the model's output. */
export interface ParsedToolCall {
  name: string;
  argumentsJson: string;
}

/** Visible text, the calls that closed, and why any call was unusable. */
export interface ExtractedText {
  text: string;
  calls: ParsedToolCall[];
  errors: string[];
}

/** Splits a stream of model text into visible text and tool calls. */
export interface ToolCallExtractor {
  push(delta: string): ExtractedText;
  /** The model yielded the turn: a call left open only by quotes that never balanced ends (ToolCallParser.settle). */
  settle(): ExtractedText;
  /** True while a call has opened and not closed. */
  readonly inCall: boolean;
  /**
   * Forgets a call under way (its text left the model's memory: a rewind, a
   * rollover) and any held-back text; returns what was dropped, "" if nothing.
   */
  abandon(): string;
  /** The state now; calling the result puts it back, as if nothing had been pushed since. */
  checkpoint(): () => void;
}

export type ToolOutcome = { ok: true; output: string } | { ok: false; error: string };

/** Runs tools: server-side ones itself, client-side ones through the client. */
export interface SessionTools {
  createExtractor(): ToolCallExtractor;
  /** True when the sidecar implements the tool itself. */
  isServerTool(name: string): boolean;
  runServerTool(name: string, argumentsJson: string, signal: AbortSignal): Promise<ToolOutcome>;
  /** Client tools: waits for the client's ToolResult (or the deadline). */
  callClientTool(
    spec: ToolSpec,
    argumentsJson: string,
    seq: number,
    send: (event: ServerPayload) => void,
  ): Promise<ToolOutcome>;
  /** Hands a client's ToolResult to the waiting call; throws NOT_FOUND for an unknown call id. */
  resolveClientTool(callId: string, outputJson: string, isError: boolean): void;
  cancelAll(): void;
  /** Client calls made so far: a moved session's call ids go on from there. */
  readonly callsMade: number;
  /** Client calls sent and not answered (what a session that moves takes along). */
  pendingClientCalls(): PendingCallState[];
  /** Waits for the results of calls made on another sidecar before the session moved here. */
  adoptClientCalls(callsMade: number, calls: readonly PendingCallState[]): Promise<ToolOutcome>[];
}
