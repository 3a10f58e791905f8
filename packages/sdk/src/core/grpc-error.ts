// Maps server failures to the error hierarchy: gRPC statuses that end a stream,
// and in-stream SessionError events. Holds gRPC code numbers itself so the
// browser entry can use it without importing grpc-js.
import { ErrorCode, type SessionError } from "@microturn/protocol";
import {
  AbortedError,
  APIError,
  type APIErrorOptions,
  BadRequestError,
  DeadlineExceededError,
  FailedPreconditionError,
  InternalServerError,
  NotFoundError,
  OutOfRangeError,
  PermissionDeniedError,
  ResourceExhaustedError,
  UnauthenticatedError,
  UnavailableError,
} from "./error.js";

/** gRPC status codes (grpc/doc/statuscodes.md). */
export const GrpcCode = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

type APIErrorClass = new (message: string, options?: APIErrorOptions) => APIError;

interface CodeMapping {
  readonly ctor: APIErrorClass;
  /** HTTP equivalent, as grpc-gateway maps it. */
  readonly status: number;
  readonly retryable: boolean;
}

const BY_GRPC_CODE: Readonly<Record<number, CodeMapping>> = {
  [GrpcCode.CANCELLED]: { ctor: AbortedError, status: 499, retryable: true },
  [GrpcCode.UNKNOWN]: { ctor: InternalServerError, status: 500, retryable: false },
  [GrpcCode.INVALID_ARGUMENT]: { ctor: BadRequestError, status: 400, retryable: false },
  [GrpcCode.DEADLINE_EXCEEDED]: { ctor: DeadlineExceededError, status: 504, retryable: true },
  [GrpcCode.NOT_FOUND]: { ctor: NotFoundError, status: 404, retryable: false },
  [GrpcCode.ALREADY_EXISTS]: { ctor: BadRequestError, status: 409, retryable: false },
  [GrpcCode.PERMISSION_DENIED]: { ctor: PermissionDeniedError, status: 403, retryable: false },
  [GrpcCode.RESOURCE_EXHAUSTED]: { ctor: ResourceExhaustedError, status: 429, retryable: true },
  [GrpcCode.FAILED_PRECONDITION]: { ctor: FailedPreconditionError, status: 400, retryable: false },
  [GrpcCode.ABORTED]: { ctor: AbortedError, status: 409, retryable: true },
  [GrpcCode.OUT_OF_RANGE]: { ctor: OutOfRangeError, status: 400, retryable: false },
  [GrpcCode.UNIMPLEMENTED]: { ctor: BadRequestError, status: 501, retryable: false },
  [GrpcCode.INTERNAL]: { ctor: InternalServerError, status: 500, retryable: false },
  [GrpcCode.UNAVAILABLE]: { ctor: UnavailableError, status: 503, retryable: true },
  [GrpcCode.DATA_LOSS]: { ctor: InternalServerError, status: 500, retryable: false },
  [GrpcCode.UNAUTHENTICATED]: { ctor: UnauthenticatedError, status: 401, retryable: false },
};

/** The parts of a grpc-js StatusObject / ServiceError the mapping reads. */
export interface GrpcStatusLike {
  code: number;
  details?: string;
  message?: string;
  metadata?: { get(key: string): unknown[] } | undefined;
}

function metadataString(status: GrpcStatusLike, key: string): string | undefined {
  const value = status.metadata?.get(key)[0];
  return typeof value === "string" && value !== "" ? value : undefined;
}

/**
 * A message over the receiver's size limit: not retryable, since a resume would send (or replay) the same message
 * and fail again. A BadRequestError, as the server's in-stream TOO_LARGE is; HTTP's 413.
 */
const MESSAGE_TOO_LARGE: CodeMapping = { ctor: BadRequestError, status: 413, retryable: false };

/**
 * grpc-js's words for a message over max_receive_message_length (or max_send), from either side: "Received message
 * larger than max (N vs. M)", "Sent message larger than max …", "Received message that decompresses to a size
 * larger than M". Other RESOURCE_EXHAUSTED (a full queue, a session limit) stays retryable.
 */
const MESSAGE_TOO_LARGE_DETAILS = /\bmessage\b.*\blarger than\b/i;

/** The typed error for a gRPC status that ended a call. */
export function errorFromGrpcStatus(status: GrpcStatusLike, options: { sessionId?: string; cause?: unknown } = {}): APIError {
  const detail = status.details || status.message || `gRPC status ${status.code}`;
  const tooLarge = status.code === GrpcCode.RESOURCE_EXHAUSTED && MESSAGE_TOO_LARGE_DETAILS.test(detail);
  const mapping = tooLarge ? MESSAGE_TOO_LARGE : (BY_GRPC_CODE[status.code] ?? { ctor: InternalServerError, status: 500, retryable: false });
  return new mapping.ctor(detail, {
    status: mapping.status,
    grpcCode: status.code,
    requestId: metadataString(status, "x-request-id"),
    sessionId: metadataString(status, "x-microturn-session-id") ?? options.sessionId,
    retryable: mapping.retryable,
    cause: options.cause,
  });
}

/** The same failure told another way (a WebSocket closed with 1009); `grpcCode` is what gRPC reports for it. */
export function messageTooLargeError(message: string): APIError {
  const { ctor, status, retryable } = MESSAGE_TOO_LARGE;
  return new ctor(message, { status, grpcCode: GrpcCode.RESOURCE_EXHAUSTED, retryable });
}

const BY_ERROR_CODE: Readonly<Record<number, number>> = {
  [ErrorCode.ERROR_CODE_INVALID_ARGUMENT]: GrpcCode.INVALID_ARGUMENT,
  [ErrorCode.ERROR_CODE_FAILED_PRECONDITION]: GrpcCode.FAILED_PRECONDITION,
  [ErrorCode.ERROR_CODE_SEQ_GAP]: GrpcCode.OUT_OF_RANGE,
  [ErrorCode.ERROR_CODE_UNSUPPORTED_MODALITY]: GrpcCode.INVALID_ARGUMENT,
  [ErrorCode.ERROR_CODE_TOO_LARGE]: GrpcCode.INVALID_ARGUMENT,
  [ErrorCode.ERROR_CODE_QUEUE_FULL]: GrpcCode.RESOURCE_EXHAUSTED,
  [ErrorCode.ERROR_CODE_NOT_FOUND]: GrpcCode.NOT_FOUND,
  [ErrorCode.ERROR_CODE_ENGINE]: GrpcCode.INTERNAL,
  [ErrorCode.ERROR_CODE_BACKGROUND_UNAVAILABLE]: GrpcCode.UNAVAILABLE,
  [ErrorCode.ERROR_CODE_TIMEOUT]: GrpcCode.DEADLINE_EXCEEDED,
  [ErrorCode.ERROR_CODE_RESOURCE_EXHAUSTED]: GrpcCode.RESOURCE_EXHAUSTED,
  [ErrorCode.ERROR_CODE_VERSION_MISMATCH]: GrpcCode.FAILED_PRECONDITION,
  [ErrorCode.ERROR_CODE_INTERNAL]: GrpcCode.INTERNAL,
  // ERROR_CODE_UNAUTHENTICATED, added to the proto after this was generated.
  14: GrpcCode.UNAUTHENTICATED,
};

/** An in-stream SessionError as a typed error; the original rides along as `sessionError`. */
export type SessionAPIError = APIError & {
  readonly sessionError: SessionError;
  /** True when the server ended the session with this error. */
  readonly fatal: boolean;
};

/** The typed error for an in-stream SessionError (non-fatal ones leave the session usable). */
export function errorFromSessionError(error: SessionError, options: { sessionId?: string } = {}): SessionAPIError {
  const grpcCode = BY_ERROR_CODE[error.code] ?? GrpcCode.UNKNOWN;
  const mapping = BY_GRPC_CODE[grpcCode] ?? { ctor: InternalServerError, status: 500, retryable: false };
  const message = error.message || `session error ${ErrorCode[error.code] ?? error.code}`;
  const typed = new mapping.ctor(message, {
    status: mapping.status,
    grpcCode,
    sessionId: options.sessionId,
    retryable: error.retryable,
  });
  Object.defineProperty(typed, "sessionError", { value: error, enumerable: true });
  Object.defineProperty(typed, "fatal", { value: error.fatal, enumerable: true });
  return typed as SessionAPIError;
}
