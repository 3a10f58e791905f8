// Typed engine failures. Every adapter throws these, so the orchestrator maps
// one set of codes to the wire (see ../errors.ts) whatever the engine.

export type EngineErrorCode =
  /** No session with that id (never opened, closed, or timed out on the server). */
  | "unknown_session"
  /** The session was closed; open a new one. */
  | "session_closed"
  /** Rewind target outside [start, current length]. */
  | "rewind_out_of_range"
  /** A second append while one is in flight. */
  | "busy"
  /** The chunk would exceed the context or a size limit. */
  | "too_large"
  /** The model file is missing or not a usable GGUF / model. */
  | "invalid_model"
  /** The engine cannot take this modality. */
  | "unsupported_modality"
  /** The engine server is down or refusing (retry later). */
  | "unavailable"
  /** The request was aborted by the caller or the server. */
  | "aborted"
  /** Malformed request the engine refused. */
  | "invalid_argument"
  /** Anything else; a bug or an engine failure. */
  | "internal";

const RETRYABLE: ReadonlySet<EngineErrorCode> = new Set(["busy", "unavailable"]);
const BRAND = Symbol.for("microturn.EngineError");

export class EngineError extends Error {
  readonly code: EngineErrorCode;
  readonly retryable: boolean;
  readonly sessionId: string | undefined;

  constructor(code: EngineErrorCode, message: string, options: { sessionId?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "EngineError";
    this.code = code;
    this.retryable = RETRYABLE.has(code);
    this.sessionId = options.sessionId;
    Object.defineProperty(this, BRAND, { value: true });
  }

  static isInstance(value: unknown): value is EngineError {
    return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }
}

/**
 * The refusal of AppendOptions.forceTool by an engine that cannot constrain
 * decoding (capabilities.forcedToolCalls unset); thrown before anything is
 * appended, so the session stays as it was.
 */
export function forcedToolRefused(engine: string, toolName: string, sessionId: string): EngineError {
  return new EngineError(
    "invalid_argument",
    `${engine}: cannot force a call of tool "${toolName}": this engine does not constrain decoding (capabilities.forcedToolCalls is false); append without forceTool`,
    { sessionId },
  );
}
