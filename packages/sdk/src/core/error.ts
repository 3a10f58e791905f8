// The SDK's one error hierarchy. Every class carries a Symbol.for brand so
// `X.isInstance(err)` holds across duplicate copies of the package, where
// `instanceof` would not.

const BRANDS = Symbol.for("microturn.error.brands");

type ErrorClass<T> = abstract new (...args: never[]) => T;

/** Base of every error the SDK throws or emits. */
export class MicroturnError extends Error {
  /** Stable name checked by `isInstance`; each subclass sets its own. */
  static readonly brand: string = "MicroturnError";

  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    const brands: string[] = [];
    for (let ctor = new.target as unknown; typeof ctor === "function" && ctor !== Error; ctor = Object.getPrototypeOf(ctor)) {
      const brand = (ctor as { brand?: unknown }).brand;
      if (typeof brand === "string" && !brands.includes(brand)) brands.push(brand);
    }
    this.name = brands[0] ?? "MicroturnError";
    Object.defineProperty(this, BRANDS, { value: brands, enumerable: false });
  }

  /** True when `value` is this class (or a subclass), from any copy of the SDK. */
  static isInstance<T>(this: ErrorClass<T> & { brand: string }, value: unknown): value is T {
    if (typeof value !== "object" || value === null) return false;
    const brands = (value as Record<symbol, unknown>)[BRANDS];
    return Array.isArray(brands) && brands.includes(this.brand);
  }
}

/** Fields an API error may carry besides its message. */
export interface APIErrorOptions {
  /** HTTP status equivalent of the failure. */
  status?: number;
  /** gRPC status code (or the in-stream ErrorCode mapped to one). */
  grpcCode?: number;
  requestId?: string;
  sessionId?: string;
  /** True when the same request may succeed later. */
  retryable?: boolean;
  cause?: unknown;
}

/** A failure reported by the server (gRPC status or in-stream SessionError). */
export class APIError extends MicroturnError {
  static override readonly brand: string = "APIError";
  readonly status: number | undefined;
  readonly grpcCode: number | undefined;
  readonly requestId: string | undefined;
  readonly sessionId: string | undefined;
  readonly retryable: boolean;

  constructor(message: string, options: APIErrorOptions = {}) {
    super(message, { cause: options.cause });
    this.status = options.status;
    this.grpcCode = options.grpcCode;
    this.requestId = options.requestId;
    this.sessionId = options.sessionId;
    this.retryable = options.retryable ?? false;
  }
}

/** The request was malformed or had invalid values (INVALID_ARGUMENT). */
export class BadRequestError extends APIError {
  static override readonly brand: string = "BadRequestError";
}
/** A referenced session, task or tool call does not exist (NOT_FOUND). */
export class NotFoundError extends APIError {
  static override readonly brand: string = "NotFoundError";
}
/** A limit was reached: sessions, tasks, queue (RESOURCE_EXHAUSTED). */
export class ResourceExhaustedError extends APIError {
  static override readonly brand: string = "ResourceExhaustedError";
}
/** The server is down or refusing; retry later (UNAVAILABLE). */
export class UnavailableError extends APIError {
  static override readonly brand: string = "UnavailableError";
}
/** A bug or engine failure on the server (INTERNAL, UNKNOWN, DATA_LOSS). */
export class InternalServerError extends APIError {
  static override readonly brand: string = "InternalServerError";
}
/** The server aborted the operation (ABORTED, CANCELLED). */
export class AbortedError extends APIError {
  static override readonly brand: string = "AbortedError";
}
/** The caller lacks permission (PERMISSION_DENIED). */
export class PermissionDeniedError extends APIError {
  static override readonly brand: string = "PermissionDeniedError";
}
/** Missing or wrong API key (UNAUTHENTICATED). */
export class UnauthenticatedError extends APIError {
  static override readonly brand: string = "UnauthenticatedError";
}
/** An event arrived in a state that does not allow it (FAILED_PRECONDITION). */
export class FailedPreconditionError extends APIError {
  static override readonly brand: string = "FailedPreconditionError";
}
/** A value is outside its valid range, e.g. a seq gap (OUT_OF_RANGE). */
export class OutOfRangeError extends APIError {
  static override readonly brand: string = "OutOfRangeError";
}
/** A server-side deadline passed (DEADLINE_EXCEEDED). */
export class DeadlineExceededError extends APIError {
  static override readonly brand: string = "DeadlineExceededError";
}

/** The connection to the server failed or dropped and could not be restored. */
export class ConnectionError extends MicroturnError {
  static override readonly brand: string = "ConnectionError";
}

/** A client-side wait ran past its deadline. */
export class TimeoutError extends MicroturnError {
  static override readonly brand: string = "TimeoutError";
}

/** The caller aborted the operation through its AbortSignal (or closed the session). */
export class AbortError extends MicroturnError {
  static override readonly brand: string = "AbortError";
}
