// Typed failures of the background model path (HTTP or gRPC transport, task
// bookkeeping). The session maps these to ERROR_CODE_* on the wire.

export type BackgroundErrorCode =
  /** The background model server is down, refusing, or dropped the stream. */
  | "unavailable"
  /** No answer (headers or next chunk) within the deadline. */
  | "timeout"
  /** The server answered with something that is not a valid completion stream. */
  | "bad_response"
  /** The caller aborted the request (cancel, task timeout, session end). */
  | "aborted"
  /** No queued or running task with that id. */
  | "not_found"
  /** A task with that id is already queued or running. */
  | "already_exists"
  /** Too many tasks waiting for a slot. */
  | "resource_exhausted"
  /** The request itself is unusable (empty task, bad options). */
  | "invalid_argument"
  /** The server answered with an HTTP error status. */
  | `http_${number}`;

const BRAND = Symbol.for("microturn.BackgroundError");

function isRetryable(code: BackgroundErrorCode): boolean {
  if (code === "unavailable" || code === "timeout" || code === "http_429") return true;
  const m = /^http_(\d+)$/.exec(code);
  return m !== null && Number(m[1]) >= 500;
}

export class BackgroundError extends Error {
  readonly code: BackgroundErrorCode;
  readonly retryable: boolean;
  /** HTTP status when the server answered with one. */
  readonly status: number | undefined;
  readonly taskId: string | undefined;

  constructor(code: BackgroundErrorCode, message: string, options: { status?: number; taskId?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "BackgroundError";
    this.code = code;
    this.retryable = isRetryable(code);
    this.status = options.status;
    this.taskId = options.taskId;
    Object.defineProperty(this, BRAND, { value: true });
  }

  static isInstance(value: unknown): value is BackgroundError {
    return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }
}
