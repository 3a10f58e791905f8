// Client-side tools: their specs for SessionStart, and the runs that answer
// ToolCall events with ToolResult (thrown errors and timeouts become is_error).
import type { ToolCall, ToolResult, ToolSpec } from "@microturn/protocol";
import { FailedPreconditionError } from "../core/error.js";
import { InvalidInputError } from "../core/session-errors.js";

/** JSON Schema object describing a tool's arguments. */
export type JsonSchema = Record<string, unknown>;

export interface ToolContext {
  callId: string;
  /** Fires when the call's deadline passes or the session closes. */
  signal: AbortSignal;
  /** The input seq whose micro-turn produced the call. */
  seq: number;
}

/**
 * Runs one call of a tool. `args` is the JSON the model wrote under the tool's
 * parameters schema, parsed; its type is the app's to declare (`Args`), as with
 * `JSON.parse`: nothing checks it against the schema on this side.
 */
export type ToolHandler<Args = unknown> = (args: Args, context: ToolContext) => unknown;

export interface ToolDefinition {
  description: string;
  parameters?: JsonSchema;
  /** How long the handler may run, in ms; 0 or unset takes the server's deadline. */
  timeoutMs?: number;
}

export const DEFAULT_TOOL_TIMEOUT_MS = 30_000;
const NAME = /^[a-zA-Z0-9_-]{1,64}$/;

export class ToolRunner {
  private readonly specs = new Map<string, ToolSpec>();
  private readonly handlers = new Map<string, ToolHandler>();
  private readonly running = new Map<string, AbortController>();
  private sealed = false;

  /** Adds a tool. Before connect it joins the tool list sent in SessionStart. */
  register<Args>(name: string, definition: ToolDefinition, handler: ToolHandler<Args>): void {
    if (typeof name !== "string" || !NAME.test(name)) {
      throw new InvalidInputError(`tool name must match [a-zA-Z0-9_-]{1,64}, got ${JSON.stringify(name)}`);
    }
    if (typeof handler !== "function") throw new InvalidInputError(`tool ${name}: handler must be a function`);
    if (this.sealed && !this.specs.has(name)) {
      throw new FailedPreconditionError(
        `tool ${name} was not declared when the session started; register tools before connect() (the list is sent in SessionStart)`,
      );
    }
    if (!this.sealed) {
      this.specs.set(name, {
        name,
        description: definition?.description ?? "",
        parametersJson: JSON.stringify(definition?.parameters ?? { type: "object", properties: {} }),
        timeoutMs: definition?.timeoutMs ?? 0,
      });
    }
    // Called with the parsed arguments, whatever they are: `Args` is the handler's own claim about them.
    this.handlers.set(name, handler as ToolHandler);
  }

  has(name: string): boolean {
    return this.handlers.has(name);
  }

  unregister(name: string): boolean {
    return this.handlers.delete(name);
  }

  list(): ToolSpec[] {
    return [...this.specs.values()];
  }

  /** Freezes the tool list once it has been sent. */
  seal(): void {
    this.sealed = true;
  }

  async run(call: ToolCall): Promise<ToolResult> {
    const handler = this.handlers.get(call.name);
    if (!handler) return failure(call, `unknown tool ${call.name}`);
    let args: unknown;
    try {
      args = call.argumentsJson.trim() === "" ? {} : JSON.parse(call.argumentsJson);
    } catch {
      return failure(call, `arguments of ${call.name} are not valid JSON`);
    }
    const spec = this.specs.get(call.name);
    const timeoutMs = call.timeoutMs || spec?.timeoutMs || DEFAULT_TOOL_TIMEOUT_MS;
    const controller = new AbortController();
    this.running.set(call.callId, controller);
    let timer: ReturnType<typeof setTimeout> | undefined;
    let onAbort: (() => void) | undefined;
    // Settles at the deadline, or at once when abortAll() aborts the call: a handler that ignores its signal must
    // not hold the timer (and with it the process) for the rest of the deadline after the session closed.
    const deadline = new Promise<ToolResult>((resolve) => {
      timer = setTimeout(() => {
        resolve(failure(call, `tool ${call.name} timed out after ${timeoutMs} ms`));
        controller.abort();
      }, timeoutMs);
      (timer as { unref?: () => void }).unref?.();
      onAbort = () => {
        clearTimeout(timer);
        resolve(failure(call, `tool ${call.name} was aborted: the session closed`));
      };
      controller.signal.addEventListener("abort", onAbort, { once: true });
    });
    const work = (async (): Promise<ToolResult> => {
      try {
        const value = await handler(args, { callId: call.callId, signal: controller.signal, seq: call.seq });
        return { callId: call.callId, outputJson: typeof value === "string" ? value : JSON.stringify(value ?? null), isError: false };
      } catch (error) {
        return failure(call, error instanceof Error ? error.message : String(error));
      }
    })();
    try {
      return await Promise.race([work, deadline]);
    } finally {
      clearTimeout(timer);
      if (onAbort) controller.signal.removeEventListener("abort", onAbort);
      this.running.delete(call.callId);
    }
  }

  /** Aborts every running handler (the session is closing). */
  abortAll(): void {
    for (const controller of this.running.values()) controller.abort();
    this.running.clear();
  }
}

function failure(call: ToolCall, message: string): ToolResult {
  return { callId: call.callId, outputJson: JSON.stringify({ error: message }), isError: true };
}
