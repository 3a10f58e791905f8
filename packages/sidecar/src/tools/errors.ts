// Typed tool failures: parsing the model's tool-call markup, validating
// arguments, running server-side tools, and client tool round-trips.

export type ToolErrorCode =
  /** No tool registered under that name. */
  | "unknown_tool"
  /** Arguments are not JSON, or do not match the tool's parameter schema. */
  | "invalid_arguments"
  /** The tool-call markup is not usable JSON or lacks a name. */
  | "malformed_call"
  /** The tool did not finish within its deadline. */
  | "timeout"
  /** The tool's handler threw. */
  | "failed"
  /** The call was cancelled (session end, cancelAll). */
  | "cancelled"
  /** A result arrived for a call id that is not pending. */
  | "unknown_call"
  /** A tool with that name is already registered. */
  | "already_registered"
  /** The tool definition itself is unusable (bad name, bad schema). */
  | "invalid_definition";

const BRAND = Symbol.for("microturn.ToolError");

export class ToolError extends Error {
  readonly code: ToolErrorCode;
  readonly toolName: string | undefined;
  readonly callId: string | undefined;

  constructor(code: ToolErrorCode, message: string, options: { toolName?: string; callId?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "ToolError";
    this.code = code;
    this.toolName = options.toolName;
    this.callId = options.callId;
    Object.defineProperty(this, BRAND, { value: true });
  }

  static isInstance(value: unknown): value is ToolError {
    return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }
}

/**
 * How a tool call ended, in a form the model can read: `outputJson` always
 * holds something to put in the conversation, also on failure.
 */
export interface ToolOutcome {
  status: "ok" | "error" | "timeout" | "cancelled";
  outputJson: string;
  isError: boolean;
  /** Set when status is not "ok". */
  errorCode?: ToolErrorCode;
}

export function okOutcome(output: unknown): ToolOutcome {
  if (typeof output === "string") return { status: "ok", outputJson: output, isError: false };
  try {
    return { status: "ok", outputJson: JSON.stringify(output ?? null), isError: false };
  } catch (err) {
    // A handler's result with a BigInt or a cycle: the call fails, the session goes on.
    return errorOutcome(new ToolError("failed", `the tool's result cannot be written as JSON: ${err instanceof Error ? err.message : String(err)}`));
  }
}

export function errorOutcome(error: ToolError): ToolOutcome {
  const status = error.code === "timeout" ? "timeout" : error.code === "cancelled" ? "cancelled" : "error";
  return { status, outputJson: JSON.stringify({ error: error.message, code: error.code }), isError: true, errorCode: error.code };
}

/** Tool names as the proto allows them: [a-zA-Z0-9_-]{1,64}. */
export const TOOL_NAME_PATTERN = /^[a-zA-Z0-9_-]{1,64}$/;
