// A failed gRPC call to a background model as a BackgroundError: one mapping
// for both SGLang gRPC clients (the native service and the SMG scheduler).
import { status as GrpcStatus, type ServiceError } from "@grpc/grpc-js";
import { BackgroundError, type BackgroundErrorCode } from "./errors.js";

const BY_STATUS: Partial<Record<GrpcStatus, BackgroundErrorCode>> = {
  [GrpcStatus.UNAVAILABLE]: "unavailable",
  [GrpcStatus.DEADLINE_EXCEEDED]: "timeout",
  [GrpcStatus.INVALID_ARGUMENT]: "invalid_argument",
  [GrpcStatus.RESOURCE_EXHAUSTED]: "resource_exhausted",
};

/** The caller's abort (or CANCELLED) is `aborted`; the statuses above map as listed; any other is `bad_response`. */
export function backgroundErrorFromGrpc(err: Partial<ServiceError>, signal: AbortSignal | undefined, what: string): BackgroundError {
  if (signal?.aborted === true || err.code === GrpcStatus.CANCELLED) return new BackgroundError("aborted", `${what}: aborted`, { cause: err });
  const code = (err.code !== undefined && BY_STATUS[err.code]) || "bad_response";
  return new BackgroundError(code, `${what}: gRPC ${err.code === undefined ? "error" : (GrpcStatus[err.code] ?? err.code)}: ${err.details || err.message}`, { cause: err });
}
