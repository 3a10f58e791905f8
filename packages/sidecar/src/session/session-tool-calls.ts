// A session's tool calls: the tool a chunk's tool_choice forces, the calls found
// in the model's text, and running them (server, client, delegate) into context.
import { ErrorCode, type InputChunk, type SessionConfig, type ToolSpec } from "@microturn/protocol";
import type { EngineCapabilities } from "../engines/engine.js";
import { SessionFault } from "../errors.js";
import { DELEGATE_TOOL_NAME, parseDelegateArguments } from "../tools/delegate.js";
import { ToolError } from "../tools/errors.js";
import { resolveDelivery, type ContextDeliveries } from "./context-deliveries.js";
import type { ConversationEntry, ExtractedText, PendingCallState, ServerPayload, SessionBackground, SessionTools, ToolCallExtractor } from "./ports.js";

export interface SessionToolCallsOptions {
  capabilities: Pick<EngineCapabilities, "engine" | "forcedToolCalls">;
  /** Every tool announced to the model (client, server, delegate): what tool_choice may name. */
  toolSpecs?: readonly ToolSpec[];
  /** The client's tools (a call to one goes to the client) and the delivery for a delegate call that names none. */
  config: Pick<SessionConfig, "tools" | "defaultDelivery">;
  /** Without it the model's text is passed through untouched. */
  tools?: SessionTools;
  /** The session's background; throws (BACKGROUND_UNAVAILABLE) when it has none. */
  background: () => SessionBackground;
  /** The conversation so far, the context a delegated task starts from. */
  conversation: () => readonly ConversationEntry[];
  deliveries: Pick<ContextDeliveries, "addToolResult">;
  /** Input time reached so far: a tool result is deliverable from then. */
  inputTimeMs: () => number;
  emit: (event: ServerPayload) => void;
  reportError: (err: unknown, context: { seq?: number }) => void;
}

/** Micro-turns a model's tool call may stay open (5 s at 200 ms): far more than any call takes. */
export const MAX_OPEN_CALL_TURNS = 25;

export class SessionToolCalls {
  private readonly opts: SessionToolCallsOptions;
  private readonly extractor: ToolCallExtractor | undefined;
  /** The micro-turn in which the call now open began. */
  private openSinceSeq: number | undefined;
  /** Server tools running now, by name (a name twice when it runs twice). */
  private readonly serverRuns: string[] = [];

  constructor(options: SessionToolCallsOptions) {
    this.opts = options;
    this.extractor = options.tools?.createExtractor();
  }

  /** The tool a chunk's tool_choice names; refused (the chunk with it) when the engine or the session cannot. */
  forcedTool(chunk: InputChunk): ToolSpec {
    const name = chunk.toolChoice;
    if (!this.opts.capabilities.forcedToolCalls) {
      throw new SessionFault(ErrorCode.ERROR_CODE_FAILED_PRECONDITION, `input seq ${chunk.seq}: engine ${this.opts.capabilities.engine} cannot force a tool call; resend without tool_choice`, {
        seq: chunk.seq,
      });
    }
    const spec = this.opts.toolSpecs?.find((t) => t.name === name);
    if (!spec) {
      const known = (this.opts.toolSpecs ?? []).map((t) => t.name).join(", ") || "none";
      throw new SessionFault(ErrorCode.ERROR_CODE_INVALID_ARGUMENT, `input seq ${chunk.seq}: tool_choice "${name}" names no tool of this session (tools: ${known})`, { seq: chunk.seq });
    }
    return spec;
  }

  /** Hands a client's ToolResult to the call waiting for it. */
  toolResult(callId: string, outputJson: string, isError: boolean): void {
    if (!this.opts.tools) throw new SessionFault(ErrorCode.ERROR_CODE_NOT_FOUND, `tool result for unknown call ${callId}: this session has no tools`);
    this.opts.tools.resolveClientTool(callId, outputJson, isError);
  }

  /** Strips tool-call markup from model text and starts the calls it holds. */
  visibleText(delta: string, seq: number): string {
    if (!this.extractor) return delta;
    if (!this.extractor.inCall) this.openSinceSeq = undefined;
    return this.take(this.extractor.push(delta), seq);
  }

  private take({ text, calls, errors }: ExtractedText, seq: number): string {
    if (this.extractor?.inCall) this.openSinceSeq ??= seq;
    for (const message of errors) this.opts.reportError(new SessionFault(ErrorCode.ERROR_CODE_INVALID_ARGUMENT, `model emitted a malformed tool call: ${message}`, { seq }), { seq });
    for (const call of calls) this.runToolCall(call.name, call.argumentsJson, seq).catch((err: unknown) => this.opts.reportError(err, { seq }));
    return text;
  }

  /**
   * After a micro-turn; returns visible text it released, for this turn's
   * output. When the model yielded the turn (`utteranceEnded`), a call whose
   * only end is a closing tag inside a string ends there (see
   * ToolCallParser.settle). A call the model opened and has not closed within
   * MAX_OPEN_CALL_TURNS micro-turns is dropped, so what it says next is heard
   * again (an unclosed call would otherwise hide the rest of the session).
   */
  endTurn(seq: number, utteranceEnded: boolean): string {
    const released = utteranceEnded && this.extractor ? this.take(this.extractor.settle(), seq) : "";
    if (!this.extractor?.inCall) this.openSinceSeq = undefined;
    if (this.openSinceSeq !== undefined && this.extractor?.inCall && seq - this.openSinceSeq + 1 >= MAX_OPEN_CALL_TURNS) {
      this.abandonCall(seq, `not closed within ${MAX_OPEN_CALL_TURNS} micro-turns`);
    }
    return released;
  }

  /**
   * The parser's state before a micro-turn; calling the result puts it back when
   * the turn's answer is taken back out of the engine (the model's memory is then
   * as it was, and so is the parser's, a call open from an earlier turn included).
   */
  checkpoint(): () => void {
    const restore = this.extractor?.checkpoint();
    const openSinceSeq = this.openSinceSeq;
    return () => {
      restore?.();
      this.openSinceSeq = openSinceSeq;
    };
  }

  /** The model's memory lost the call under way (a barge-in cut it, a rollover left it behind): it is dropped. */
  abandonCall(seq: number, why: string): void {
    if (!this.extractor?.inCall) return;
    const dropped = this.extractor.abandon();
    this.openSinceSeq = undefined;
    this.opts.reportError(new SessionFault(ErrorCode.ERROR_CODE_INVALID_ARGUMENT, `model's tool call dropped, ${why}: ${dropped.slice(0, 120)}`, { seq }), { seq });
  }

  /** A tool's result (or failure) waits in the deliveries for the next boundary; a delegate call starts a background task instead. */
  async runToolCall(name: string, argumentsJson: string, seq: number): Promise<void> {
    const tools = this.opts.tools!;
    if (name === DELEGATE_TOOL_NAME) {
      try {
        const args = parseDelegateArguments(argumentsJson);
        this.opts.background().start({
          task: args.task,
          delivery: resolveDelivery(args.delivery, this.opts.config.defaultDelivery),
          ...(args.timeoutMs ? { timeoutMs: args.timeoutMs } : {}),
          fromModel: true,
          conversation: [...this.opts.conversation()],
        });
      } catch (err) {
        this.opts.reportError(ToolError.isInstance(err) ? new SessionFault(ErrorCode.ERROR_CODE_INVALID_ARGUMENT, err.message, { seq }) : err, { seq });
        // The model hears it too, like any tool that failed: else it waits for a task that never started.
        this.opts.deliveries.addToolResult(name, `error: ${err instanceof Error ? err.message : String(err)}`, this.opts.inputTimeMs());
      }
      return;
    }
    const spec = this.opts.config.tools.find((t) => t.name === name);
    let outcome;
    if (tools.isServerTool(name)) {
      this.serverRuns.push(name);
      try {
        outcome = await tools.runServerTool(name, argumentsJson, AbortSignal.timeout(60_000));
      } finally {
        this.serverRuns.splice(this.serverRuns.indexOf(name), 1);
      }
    } else if (spec) outcome = await tools.callClientTool(spec, argumentsJson, seq, (event) => this.opts.emit(event));
    else {
      outcome = { ok: false as const, error: `unknown tool "${name}"` };
      // The client hears of it too: a model calling tools nobody declared is worth knowing about.
      this.opts.reportError(new SessionFault(ErrorCode.ERROR_CODE_INVALID_ARGUMENT, `model called unknown tool "${name}" (neither the session's nor a server tool)`, { seq }), { seq });
    }
    this.opts.deliveries.addToolResult(name, outcome.ok ? outcome.output : `error: ${outcome.error}`, this.opts.inputTimeMs());
  }

  /**
   * The session moves to another sidecar. Client calls waiting for results go
   * along (their results will come to the taker); a server tool still running
   * here cannot, and its result goes along as that failure.
   */
  release(): { callsMade: number; pendingCalls: PendingCallState[]; interrupted: string[] } {
    return { callsMade: this.opts.tools?.callsMade ?? 0, pendingCalls: this.opts.tools?.pendingClientCalls() ?? [], interrupted: [...this.serverRuns] };
  }

  /** Waits for the client calls of a session that moved here; each result is context at the next boundary, as here. */
  adopt(callsMade: number, calls: readonly PendingCallState[]): void {
    const tools = this.opts.tools;
    if (!tools) return;
    const outcomes = tools.adoptClientCalls(callsMade, calls);
    calls.forEach((call, i) => {
      void outcomes[i]!.then((outcome) => this.opts.deliveries.addToolResult(call.name, outcome.ok ? outcome.output : `error: ${outcome.error}`, this.opts.inputTimeMs()));
    });
  }
}
