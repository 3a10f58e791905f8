// Client-side tools: the sidecar sends a ToolCall to the SDK and waits for the
// matching ToolResult. Tracks pending calls, their deadlines and cancellation;
// a call always settles with an outcome, never a rejection.
import type { PendingToolCall, ToolCall, ToolResult } from "@microturn/protocol";
import { ToolError, errorOutcome, type ToolOutcome } from "./errors.js";
import { timerMs } from "../timers.js";

export interface ClientCallOptions {
  /** Deadline for the result, ms; defaults to the broker's. */
  timeoutMs?: number;
  /** The input seq whose micro-turn produced the call. */
  seq?: number;
}

export interface PendingClientCall {
  callId: string;
  /** The message to send to the client. */
  toolCall: ToolCall;
  /** Settles with the client's result, a timeout or a cancel outcome. */
  result: Promise<ToolOutcome>;
}

interface Pending {
  name: string;
  /** When the result stops being waited for, Date.now() ms. */
  deadline: number;
  timer: NodeJS.Timeout | undefined;
  settle: (outcome: ToolOutcome) => void;
}

export const DEFAULT_CLIENT_TOOL_TIMEOUT_MS = 30_000;

export class ClientToolBroker {
  private readonly pending = new Map<string, Pending>();
  private readonly defaultTimeoutMs: number;
  private readonly deadlines: boolean;
  /**
   * Call ids are numbered per broker (one broker per session), not random: a
   * replay of a recorded session on the same engine makes the same calls in
   * the same order, so the recorded ToolResults name the replay's ids. They
   * only need to be unique within the session; no other session can answer them.
   */
  private calls = 0;

  /**
   * `deadlines: false` waits for each result however long it takes (replay,
   * whose recording says how each call ended); a call still says its timeout.
   */
  constructor(options: { defaultTimeoutMs?: number; deadlines?: boolean } = {}) {
    this.defaultTimeoutMs = options.defaultTimeoutMs ?? DEFAULT_CLIENT_TOOL_TIMEOUT_MS;
    this.deadlines = options.deadlines ?? true;
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  /** Calls made so far: ids go on from `call_<callsMade + 1>`. */
  get callsMade(): number {
    return this.calls;
  }

  call(name: string, argumentsJson: string, options: ClientCallOptions = {}): PendingClientCall {
    const callId = `call_${++this.calls}`;
    const timeoutMs = options.timeoutMs !== undefined && options.timeoutMs > 0 ? options.timeoutMs : this.defaultTimeoutMs;
    const result = this.await(callId, name, timeoutMs);
    return { callId, toolCall: { callId, name, argumentsJson, seq: options.seq ?? 0, timeoutMs }, result };
  }

  /** Calls sent and not answered, with the time each has left: what a session that moves to another sidecar takes along. */
  pendingCalls(now = Date.now()): PendingToolCall[] {
    return [...this.pending].map(([callId, p]) => ({ callId, name: p.name, remainingMs: Math.max(1, p.deadline - now) }));
  }

  /**
   * Waits for calls another sidecar made before the session moved here: their
   * results come to this broker now. Ids go on after `callsMade`. Returns each
   * call's outcome, settled as `call`'s are.
   */
  adopt(callsMade: number, calls: readonly PendingToolCall[]): Promise<ToolOutcome>[] {
    this.calls = Math.max(this.calls, callsMade);
    return calls.map((c) => this.await(c.callId, c.name, c.remainingMs));
  }

  private await(callId: string, name: string, timeoutMs: number): Promise<ToolOutcome> {
    return new Promise<ToolOutcome>((resolve) => {
      const timer = this.deadlines
        ? setTimeout(() => {
            this.pending.delete(callId);
            resolve(errorOutcome(new ToolError("timeout", `client tool "${name}" sent no result within ${timeoutMs} ms`, { toolName: name, callId })));
          }, timerMs(timeoutMs))
        : undefined;
      this.pending.set(callId, {
        name,
        deadline: Date.now() + timeoutMs,
        timer,
        settle: (outcome) => {
          clearTimeout(timer);
          this.pending.delete(callId);
          resolve(outcome);
        },
      });
    });
  }

  /** Settles the call the result answers; throws ToolError "unknown_call" when none is pending. */
  resolve(result: ToolResult): void {
    const pending = this.pending.get(result.callId);
    if (pending === undefined) {
      throw new ToolError("unknown_call", `no pending tool call with id "${result.callId}" (unknown, already answered, or timed out)`, { callId: result.callId });
    }
    pending.settle(
      result.isError
        ? { status: "error", outputJson: result.outputJson, isError: true, errorCode: "failed" }
        : { status: "ok", outputJson: result.outputJson, isError: false },
    );
  }

  /** Settles one pending call as cancelled; false when it is not pending. */
  cancel(callId: string): boolean {
    const pending = this.pending.get(callId);
    if (pending === undefined) return false;
    pending.settle(errorOutcome(new ToolError("cancelled", `client tool "${pending.name}" was cancelled`, { toolName: pending.name, callId })));
    return true;
  }

  /** Settles every pending call as cancelled (session end). */
  cancelAll(): void {
    for (const callId of [...this.pending.keys()]) this.cancel(callId);
  }
}
