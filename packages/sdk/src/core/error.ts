// The SDK's one error hierarchy. Every client (SGLang HTTP, microturn gRPC)
// throws these, so an app writes one `catch` whatever the transport.
// Checks go through `static isInstance()` (a Symbol.for brand), which survives
// two copies of the package in one process where `instanceof` would not.

const BRAND = Symbol.for("microturn.MicroturnError");
const KIND = Symbol.for("microturn.MicroturnError.kind");

function brand(target: object, kind: string): void {
  Object.defineProperty(target, BRAND, { value: true });
  const kinds = ((target as Record<symbol, unknown>)[KIND] as Set<string> | undefined) ?? new Set<string>();
  kinds.add(kind);
  Object.defineProperty(target, KIND, { value: kinds, configurable: true });
}

function hasKind(value: unknown, kind: string): boolean {
  if (typeof value !== "object" || value === null) return false;
  const kinds = (value as Record<symbol, unknown>)[KIND];
  return kinds instanceof Set && kinds.has(kind);
}

/** Base of every error the SDK throws. */
export class MicroturnError extends Error {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "MicroturnError";
    brand(this, "MicroturnError");
  }

  static isInstance(value: unknown): value is MicroturnError {
    return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }
}

export interface APIErrorOptions {
  /** HTTP status of the response, when the transport is HTTP. */
  status?: number;
  /** gRPC status code, when the transport is gRPC. */
  grpcCode?: number;
  /** Server's own error code or type (SGLang `err_type`, `type`, `code`). */
  code?: string;
  requestId?: string;
  sessionId?: string;
  /** Overrides the class default. */
  retryable?: boolean;
  /** The parsed error body, for diagnostics. */
  body?: unknown;
  cause?: unknown;
}

/** The server answered, and the answer is an error. */
export class APIError extends MicroturnError {
  readonly status: number | undefined;
  readonly grpcCode: number | undefined;
  readonly code: string | undefined;
  readonly requestId: string | undefined;
  readonly sessionId: string | undefined;
  readonly retryable: boolean;
  readonly body: unknown;

  constructor(message: string, options: APIErrorOptions = {}, defaultRetryable = false) {
    super(message, { cause: options.cause });
    this.name = "APIError";
    this.status = options.status;
    this.grpcCode = options.grpcCode;
    this.code = options.code;
    this.requestId = options.requestId;
    this.sessionId = options.sessionId;
    this.retryable = options.retryable ?? defaultRetryable;
    this.body = options.body;
    brand(this, "APIError");
  }

  static override isInstance(value: unknown): value is APIError {
    return hasKind(value, "APIError");
  }
}

/** The request was malformed or refused as invalid (HTTP 400, gRPC INVALID_ARGUMENT). */
export class BadRequestError extends APIError {
  constructor(message: string, options: APIErrorOptions = {}) {
    super(message, options);
    this.name = "BadRequestError";
    brand(this, "BadRequestError");
  }
  static override isInstance(value: unknown): value is BadRequestError {
    return hasKind(value, "BadRequestError");
  }
}

/** The input does not fit the model's context or the server's input limit. */
export class ContextLengthExceededError extends BadRequestError {
  constructor(message: string, options: APIErrorOptions = {}) {
    super(message, options);
    this.name = "ContextLengthExceededError";
    brand(this, "ContextLengthExceededError");
  }
  static override isInstance(value: unknown): value is ContextLengthExceededError {
    return hasKind(value, "ContextLengthExceededError");
  }
}

/** Missing or wrong API key (HTTP 401, gRPC UNAUTHENTICATED). */
export class AuthenticationError extends APIError {
  constructor(message: string, options: APIErrorOptions = {}) {
    super(message, options);
    this.name = "AuthenticationError";
    brand(this, "AuthenticationError");
  }
  static override isInstance(value: unknown): value is AuthenticationError {
    return hasKind(value, "AuthenticationError");
  }
}

/** The key is valid but not allowed here (HTTP 403, gRPC PERMISSION_DENIED). */
export class PermissionDeniedError extends APIError {
  constructor(message: string, options: APIErrorOptions = {}) {
    super(message, options);
    this.name = "PermissionDeniedError";
    brand(this, "PermissionDeniedError");
  }
  static override isInstance(value: unknown): value is PermissionDeniedError {
    return hasKind(value, "PermissionDeniedError");
  }
}

/** No such route, session or task (HTTP 404, gRPC NOT_FOUND, SGLang "session id ... does not exist"). */
export class NotFoundError extends APIError {
  constructor(message: string, options: APIErrorOptions = {}) {
    super(message, options);
    this.name = "NotFoundError";
    brand(this, "NotFoundError");
  }
  static override isInstance(value: unknown): value is NotFoundError {
    return hasKind(value, "NotFoundError");
  }
}

/** The request conflicts with the current state (HTTP 409, gRPC ALREADY_EXISTS / FAILED_PRECONDITION). */
export class ConflictError extends APIError {
  constructor(message: string, options: APIErrorOptions = {}, defaultRetryable = false) {
    super(message, options, defaultRetryable);
    this.name = "ConflictError";
    brand(this, "ConflictError");
  }
  static override isInstance(value: unknown): value is ConflictError {
    return hasKind(value, "ConflictError");
  }
}

/** The session already has a request in flight; retry once it finishes. */
export class SessionBusyError extends ConflictError {
  constructor(message: string, options: APIErrorOptions = {}) {
    super(message, options, true);
    this.name = "SessionBusyError";
    brand(this, "SessionBusyError");
  }
  static override isInstance(value: unknown): value is SessionBusyError {
    return hasKind(value, "SessionBusyError");
  }
}

/** Too many requests or a full queue (HTTP 429, gRPC RESOURCE_EXHAUSTED). */
export class RateLimitError extends APIError {
  constructor(message: string, options: APIErrorOptions = {}) {
    super(message, options, true);
    this.name = "RateLimitError";
    brand(this, "RateLimitError");
  }
  static override isInstance(value: unknown): value is RateLimitError {
    return hasKind(value, "RateLimitError");
  }
}

/** gRPC's name for the same condition. */
export const ResourceExhaustedError = RateLimitError;
export type ResourceExhaustedError = RateLimitError;

/** The server failed (HTTP 500, gRPC INTERNAL / UNKNOWN / DATA_LOSS). */
export class InternalServerError extends APIError {
  constructor(message: string, options: APIErrorOptions = {}) {
    super(message, options);
    this.name = "InternalServerError";
    brand(this, "InternalServerError");
  }
  static override isInstance(value: unknown): value is InternalServerError {
    return hasKind(value, "InternalServerError");
  }
}

/** The server cannot serve now: starting, draining, overloaded (HTTP 502/503/504, gRPC UNAVAILABLE). */
export class UnavailableError extends APIError {
  constructor(message: string, options: APIErrorOptions = {}) {
    super(message, options, true);
    this.name = "UnavailableError";
    brand(this, "UnavailableError");
  }
  static override isInstance(value: unknown): value is UnavailableError {
    return hasKind(value, "UnavailableError");
  }
}

/** The server aborted the request (SGLang `finish_reason.type == "abort"`, gRPC ABORTED / CANCELLED by the server). */
export class AbortedError extends APIError {
  constructor(message: string, options: APIErrorOptions = {}) {
    super(message, options);
    this.name = "AbortedError";
    brand(this, "AbortedError");
  }
  static override isInstance(value: unknown): value is AbortedError {
    return hasKind(value, "AbortedError");
  }
}

/** The server could not be reached, or the connection broke mid-request. */
export class ConnectionError extends MicroturnError {
  readonly retryable = true;
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, options);
    this.name = "ConnectionError";
    brand(this, "ConnectionError");
  }
  static override isInstance(value: unknown): value is ConnectionError {
    return hasKind(value, "ConnectionError");
  }
}

/** No answer (or no progress on a stream) within the client's timeout. */
export class TimeoutError extends MicroturnError {
  readonly retryable = true;
  readonly timeoutMs: number;
  constructor(message: string, options: { timeoutMs: number; cause?: unknown }) {
    super(message, options);
    this.name = "TimeoutError";
    this.timeoutMs = options.timeoutMs;
    brand(this, "TimeoutError");
  }
  static override isInstance(value: unknown): value is TimeoutError {
    return hasKind(value, "TimeoutError");
  }
}

/** The caller aborted the request through its AbortSignal. */
export class AbortError extends MicroturnError {
  readonly retryable = false;
  constructor(message = "The request was aborted by the caller.", options: { cause?: unknown } = {}) {
    super(message, options);
    this.name = "AbortError";
    brand(this, "AbortError");
  }
  static override isInstance(value: unknown): value is AbortError {
    return hasKind(value, "AbortError");
  }
}

/** Class for an HTTP error status; `APIError` itself when no subclass fits. */
export function apiErrorForStatus(status: number, message: string, options: Omit<APIErrorOptions, "status"> = {}): APIError {
  const opts = { ...options, status };
  switch (status) {
    case 400:
    case 422:
      return new BadRequestError(message, opts);
    case 401:
      return new AuthenticationError(message, opts);
    case 403:
      return new PermissionDeniedError(message, opts);
    case 404:
      return new NotFoundError(message, opts);
    case 409:
      return new ConflictError(message, opts);
    case 413:
      return new ContextLengthExceededError(message, opts);
    case 429:
      return new RateLimitError(message, opts);
    case 502:
    case 503:
    case 504:
      return new UnavailableError(message, opts);
    default:
      return status >= 500 ? new InternalServerError(message, opts) : new APIError(message, opts);
  }
}
