// Server-side tools: registered in the sidecar, run in-process when the
// interaction or background model calls them. Arguments are checked against
// the tool's schema; every failure comes back as a ToolOutcome, never a throw.
import type { ToolSpec } from "@microturn/protocol";
import type { ChatToolSpec } from "../background/client.js";
import { ToolError, TOOL_NAME_PATTERN, errorOutcome, okOutcome, type ToolOutcome } from "./errors.js";
import { checkSchema, validate, type JsonSchemaLite } from "./schema.js";
import { timerMs } from "../timers.js";

export interface ToolContext {
  /** Aborted at the tool's deadline or when the caller gives up. */
  signal: AbortSignal;
}

export interface ServerTool<Args = Record<string, unknown>> {
  name: string;
  description: string;
  /** JSON Schema (the subset in schema.ts) of the arguments object. */
  parameters: JsonSchemaLite;
  /** Returns a JSON-serialisable result (a string is passed through as is). */
  handler: (args: Args, context: ToolContext) => unknown;
  /** Deadline, ms; defaults to the registry's. */
  timeoutMs?: number;
}

export interface ExecuteOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
}

export const DEFAULT_TOOL_TIMEOUT_MS = 10_000;

export class ServerToolRegistry {
  private readonly tools = new Map<string, ServerTool>();
  private readonly defaultTimeoutMs: number;

  constructor(options: { defaultTimeoutMs?: number } = {}) {
    this.defaultTimeoutMs = options.defaultTimeoutMs ?? DEFAULT_TOOL_TIMEOUT_MS;
  }

  register<Args>(tool: ServerTool<Args>): this {
    if (!TOOL_NAME_PATTERN.test(tool.name)) {
      throw new ToolError("invalid_definition", `tool name ${JSON.stringify(tool.name)} must match [a-zA-Z0-9_-]{1,64}`, { toolName: tool.name });
    }
    if (this.tools.has(tool.name)) throw new ToolError("already_registered", `tool "${tool.name}" is already registered`, { toolName: tool.name });
    const problems = checkSchema(tool.parameters);
    if (problems.length > 0) throw new ToolError("invalid_definition", `tool "${tool.name}": ${problems.join("; ")}`, { toolName: tool.name });
    this.tools.set(tool.name, tool as unknown as ServerTool);
    return this;
  }

  unregister(name: string): boolean {
    return this.tools.delete(name);
  }

  has(name: string): boolean {
    return this.tools.has(name);
  }

  get names(): string[] {
    return [...this.tools.keys()];
  }

  /** The tools in OpenAI chat-completions shape, for the background model. */
  chatToolSpecs(): ChatToolSpec[] {
    return [...this.tools.values()].map((t) => ({
      type: "function",
      function: { name: t.name, description: t.description, parameters: t.parameters as Record<string, unknown> },
    }));
  }

  /** The tools as proto ToolSpecs, for the interaction model's prompt. */
  toolSpecs(): ToolSpec[] {
    return [...this.tools.values()].map((t) => ({
      name: t.name,
      description: t.description,
      parametersJson: JSON.stringify(t.parameters),
      timeoutMs: t.timeoutMs ?? this.defaultTimeoutMs,
    }));
  }

  /** Parses and validates arguments; throws ToolError (unknown_tool, invalid_arguments). */
  parseArguments(name: string, argumentsJson: string): Record<string, unknown> {
    const tool = this.tools.get(name);
    if (tool === undefined) throw new ToolError("unknown_tool", `no server tool named "${name}" (known: ${this.names.join(", ") || "none"})`, { toolName: name });
    let args: unknown;
    try {
      args = argumentsJson.trim() === "" ? {} : JSON.parse(argumentsJson);
    } catch (err) {
      throw new ToolError("invalid_arguments", `arguments of "${name}" are not JSON: ${(err as Error).message}`, { toolName: name, cause: err });
    }
    if (typeof args !== "object" || args === null || Array.isArray(args)) {
      throw new ToolError("invalid_arguments", `arguments of "${name}" must be a JSON object`, { toolName: name });
    }
    const problems = validate(args, { type: "object", ...tool.parameters });
    if (problems.length > 0) throw new ToolError("invalid_arguments", `${name}: ${problems.join("; ")}`, { toolName: name });
    return args as Record<string, unknown>;
  }

  /** Runs a tool. Never rejects: failures, timeouts and cancels are outcomes. */
  async execute(name: string, argumentsJson: string, options: ExecuteOptions = {}): Promise<ToolOutcome> {
    let args: Record<string, unknown>;
    try {
      args = this.parseArguments(name, argumentsJson);
    } catch (err) {
      return errorOutcome(err as ToolError);
    }
    const tool = this.tools.get(name) as ServerTool;
    const timeoutMs = options.timeoutMs ?? tool.timeoutMs ?? this.defaultTimeoutMs;
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    const stopped = new Promise<ToolError>((resolve) => {
      timer = setTimeout(() => resolve(new ToolError("timeout", `${name} did not finish within ${timeoutMs} ms`, { toolName: name })), timerMs(timeoutMs));
      onAbort = () => resolve(new ToolError("cancelled", `${name} was cancelled`, { toolName: name }));
      if (options.signal?.aborted === true) onAbort();
      else options.signal?.addEventListener("abort", onAbort, { once: true });
    });
    try {
      const result = await Promise.race([
        Promise.resolve()
          .then(() => tool.handler(args, { signal: controller.signal }))
          .then((value) => ({ value }))
          .catch((err: unknown) => ({
            error: ToolError.isInstance(err) ? err : new ToolError("failed", `${name} failed: ${err instanceof Error ? err.message : String(err)}`, { toolName: name, cause: err }),
          })),
        stopped.then((error) => ({ error })),
      ]);
      if ("error" in result) {
        controller.abort(result.error);
        return errorOutcome(result.error);
      }
      return okOutcome(result.value);
    } finally {
      clearTimeout(timer);
      if (onAbort !== undefined) options.signal?.removeEventListener("abort", onAbort);
    }
  }
}
