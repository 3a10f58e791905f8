// The one place that turns failures into what goes on the wire: in-stream
// SessionError events (ErrorCode) and gRPC status codes.
import { status } from "@grpc/grpc-js";
import { ErrorCode, type SessionError } from "@microturn/protocol";
import { EngineError, type EngineErrorCode } from "./engines/errors.js";

const BRAND = Symbol.for("microturn.SessionFault");

/** A failure the session reports to its client; `fatal` ends the session. */
export class SessionFault extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly seq: number;
  readonly fatal: boolean;

  constructor(code: ErrorCode, message: string, options: { retryable?: boolean; seq?: number; fatal?: boolean; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "SessionFault";
    this.code = code;
    this.retryable = options.retryable ?? false;
    this.seq = options.seq ?? 0;
    this.fatal = options.fatal ?? false;
    Object.defineProperty(this, BRAND, { value: true });
  }

  static isInstance(value: unknown): value is SessionFault {
    return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }
}

const ENGINE_CODES: Record<EngineErrorCode, ErrorCode> = {
  unknown_session: ErrorCode.ERROR_CODE_ENGINE,
  session_closed: ErrorCode.ERROR_CODE_ENGINE,
  rewind_out_of_range: ErrorCode.ERROR_CODE_ENGINE,
  busy: ErrorCode.ERROR_CODE_ENGINE,
  too_large: ErrorCode.ERROR_CODE_TOO_LARGE,
  invalid_model: ErrorCode.ERROR_CODE_ENGINE,
  unsupported_modality: ErrorCode.ERROR_CODE_UNSUPPORTED_MODALITY,
  unavailable: ErrorCode.ERROR_CODE_ENGINE,
  aborted: ErrorCode.ERROR_CODE_ENGINE,
  invalid_argument: ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
  internal: ErrorCode.ERROR_CODE_INTERNAL,
};

/** The SessionError event for any failure; `seq` and `eventId` say what it concerns. */
export function toSessionError(err: unknown, context: { seq?: number; eventId?: string } = {}): SessionError {
  if (SessionFault.isInstance(err)) {
    return { code: err.code, message: err.message, retryable: err.retryable, seq: err.seq || context.seq || 0, eventId: context.eventId ?? "", fatal: err.fatal };
  }
  if (EngineError.isInstance(err)) {
    return {
      code: ENGINE_CODES[err.code],
      message: `engine: ${err.message}`,
      retryable: err.retryable,
      seq: context.seq ?? 0,
      eventId: context.eventId ?? "",
      fatal: err.code === "session_closed" || err.code === "unknown_session",
    };
  }
  const message = err instanceof Error ? err.message : String(err);
  return { code: ErrorCode.ERROR_CODE_INTERNAL, message: `internal: ${message}`, retryable: false, seq: context.seq ?? 0, eventId: context.eventId ?? "", fatal: false };
}

const GRPC_CODES: Partial<Record<ErrorCode, status>> = {
  [ErrorCode.ERROR_CODE_INVALID_ARGUMENT]: status.INVALID_ARGUMENT,
  [ErrorCode.ERROR_CODE_FAILED_PRECONDITION]: status.FAILED_PRECONDITION,
  [ErrorCode.ERROR_CODE_SEQ_GAP]: status.OUT_OF_RANGE,
  [ErrorCode.ERROR_CODE_UNSUPPORTED_MODALITY]: status.INVALID_ARGUMENT,
  [ErrorCode.ERROR_CODE_TOO_LARGE]: status.RESOURCE_EXHAUSTED,
  [ErrorCode.ERROR_CODE_QUEUE_FULL]: status.RESOURCE_EXHAUSTED,
  [ErrorCode.ERROR_CODE_NOT_FOUND]: status.NOT_FOUND,
  [ErrorCode.ERROR_CODE_ENGINE]: status.UNAVAILABLE,
  [ErrorCode.ERROR_CODE_BACKGROUND_UNAVAILABLE]: status.UNAVAILABLE,
  [ErrorCode.ERROR_CODE_TIMEOUT]: status.DEADLINE_EXCEEDED,
  [ErrorCode.ERROR_CODE_RESOURCE_EXHAUSTED]: status.RESOURCE_EXHAUSTED,
  [ErrorCode.ERROR_CODE_VERSION_MISMATCH]: status.FAILED_PRECONDITION,
  [ErrorCode.ERROR_CODE_UNAUTHENTICATED]: status.UNAUTHENTICATED,
};

/** gRPC status that ends a stream for a fatal session error. */
export function grpcStatusFor(code: ErrorCode): status {
  return GRPC_CODES[code] ?? status.INTERNAL;
}
