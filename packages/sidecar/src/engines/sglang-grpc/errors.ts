// gRPC status -> EngineError, for the StreamingSession contract. A server may
// name the exact engine code in the `microturn-error-code` trailer; otherwise
// the status code decides.
import { Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { EngineError, type EngineErrorCode } from "../errors.js";

/** Trailer a StreamingSession server may set to the exact EngineErrorCode. */
export const ERROR_CODE_TRAILER = "microturn-error-code";

const ENGINE_CODES: ReadonlySet<string> = new Set<EngineErrorCode>([
  "unknown_session", "session_closed", "rewind_out_of_range", "busy", "too_large", "invalid_model",
  "unsupported_modality", "unavailable", "aborted", "invalid_argument", "internal",
]);

/** Where the call was made; FAILED_PRECONDITION means "busy" on a session but "incompatible" at open. */
export type GrpcOperation = "open" | "append" | "rewind" | "close" | "health";

export function codeForStatus(code: number, operation: GrpcOperation): EngineErrorCode {
  switch (code) {
    case status.NOT_FOUND:
      return "unknown_session";
    case status.OUT_OF_RANGE:
      return "rewind_out_of_range";
    case status.FAILED_PRECONDITION:
      return operation === "open" ? "invalid_argument" : "busy";
    case status.ABORTED:
      return "busy";
    case status.UNAVAILABLE:
    case status.DEADLINE_EXCEEDED:
      return "unavailable";
    case status.RESOURCE_EXHAUSTED:
      return "too_large";
    case status.INVALID_ARGUMENT:
      return "invalid_argument";
    case status.UNIMPLEMENTED:
      return "unsupported_modality";
    case status.CANCELLED:
      return "aborted";
    default:
      return "internal";
  }
}

function isServiceError(error: unknown): error is ServiceError {
  return typeof error === "object" && error !== null && typeof (error as ServiceError).code === "number" && "metadata" in error;
}

/**
 * grpc-js refusing a message over its own size limit also says RESOURCE_EXHAUSTED;
 * that is not a full sequence (a rollover would not help) but a server sending
 * more than this client takes.
 */
function isLocalSizeLimit(error: ServiceError): boolean {
  return error.code === status.RESOURCE_EXHAUSTED && /larger than max/i.test(error.details || error.message);
}

export function toEngineError(error: unknown, operation: GrpcOperation, sessionId?: string): EngineError {
  if (EngineError.isInstance(error)) return error;
  const options = { cause: error, ...(sessionId === undefined ? {} : { sessionId }) };
  if (!isServiceError(error)) return new EngineError("internal", `sglang-grpc ${operation}: ${String(error)}`, options);
  const named = error.metadata instanceof Metadata ? error.metadata.get(ERROR_CODE_TRAILER)[0] : undefined;
  const code =
    typeof named === "string" && ENGINE_CODES.has(named)
      ? (named as EngineErrorCode)
      : isLocalSizeLimit(error)
        ? "internal"
        : codeForStatus(error.code, operation);
  const detail = error.details || error.message;
  const prefix = error.code === status.DEADLINE_EXCEEDED ? "deadline exceeded: " : "";
  return new EngineError(code, `sglang-grpc ${operation}: ${prefix}${detail}`, options);
}
