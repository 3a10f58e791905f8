// Maps SGLang's failure shapes onto the SDK's error classes. SGLang reports
// errors four ways (see docs/sglang-http.md): an HTTP error body (three JSON
// shapes), an `{"error": {...}}` event inside a 200 SSE stream, and a
// `finish_reason` of type "abort" on the last result. Session failures come as
// plain 400s or aborts, so the message decides the class before the status.
import {
  AbortedError,
  APIError,
  type APIErrorOptions,
  BadRequestError,
  ContextLengthExceededError,
  FailedPreconditionError,
  InternalServerError,
  NotFoundError,
  PermissionDeniedError,
  ResourceExhaustedError,
  SessionBusyError,
  UnauthenticatedError,
  UnavailableError,
} from "../core/error.js";
import type { SglangFinishReason } from "./types.js";

type ErrorClass = new (message: string, options: APIErrorOptions) => APIError;

/** Message patterns of the pinned SGLang (scheduler.py, session_controller.py, http_server.py). */
const MESSAGE_CLASSES: ReadonlyArray<readonly [RegExp, ErrorClass]> = [
  [/session id \S+ does not exist|close was requested for session/i, NotFoundError],
  [/already has an active request|appending to a request that hasn't finished/i, SessionBusyError],
  [/Failed to open the session/i, FailedPreconditionError],
  [/exceeds the maximum allowed length|longer than the model's context length|longer than the KV cache/i, ContextLengthExceededError],
];

/** Class for an HTTP status; `APIError` itself when none fits. 429, 502, 503 and 504 are retryable. */
export function apiErrorForStatus(status: number, message: string, options: APIErrorOptions = {}): APIError {
  const opts: APIErrorOptions = { ...options, status };
  const retryable = { retryable: true, ...opts };
  switch (status) {
    case 400:
    case 422:
      return new BadRequestError(message, opts);
    case 401:
      return new UnauthenticatedError(message, opts);
    case 403:
      return new PermissionDeniedError(message, opts);
    case 404:
      return new NotFoundError(message, opts);
    case 409:
      return new FailedPreconditionError(message, opts);
    case 413:
      return new ContextLengthExceededError(message, opts);
    case 429:
      return new ResourceExhaustedError(message, retryable);
    case 502:
    case 503:
    case 504:
      return new UnavailableError(message, retryable);
    default:
      return status >= 500 ? new InternalServerError(message, opts) : new APIError(message, opts);
  }
}

export interface ErrorContext {
  sessionId?: string;
  requestId?: string;
}

function byMessage(message: string, options: APIErrorOptions): APIError | undefined {
  for (const [pattern, ErrorType] of MESSAGE_CLASSES) {
    if (pattern.test(message)) return new ErrorType(message, options);
  }
  return undefined;
}

/** Text of SGLang's error bodies: `{"error":{"message"}}`, `{"error":"..."}`, `{"object":"error","message"}`, `{"detail":...}`. */
export function errorBodyMessage(body: unknown): string | undefined {
  if (typeof body !== "object" || body === null) return undefined;
  const record = body as Record<string, unknown>;
  const error = record.error;
  if (typeof error === "string") return error;
  if (typeof error === "object" && error !== null) {
    const message = (error as Record<string, unknown>).message;
    return typeof message === "string" ? message : undefined;
  }
  if (typeof record.message === "string") return record.message;
  if (record.detail !== undefined) return typeof record.detail === "string" ? record.detail : JSON.stringify(record.detail);
  return undefined;
}

/** An HTTP response with a non-2xx status. */
export function errorFromHttpResponse(status: number, bodyText: string, context: ErrorContext): APIError {
  let body: unknown = bodyText;
  try {
    body = bodyText === "" ? undefined : JSON.parse(bodyText);
  } catch {
    // Not JSON (a proxy's HTML page, say): keep the text.
  }
  const message = errorBodyMessage(body) ?? (bodyText.trim() || `SGLang answered HTTP ${status}`);
  const options: APIErrorOptions = { status, ...context };
  return byMessage(message, options) ?? apiErrorForStatus(status, message, options);
}

/** An `{"error": {...}}` event inside a streamed `/generate` response (HTTP 200). */
export function errorFromStreamEvent(event: Record<string, unknown>, context: ErrorContext): APIError {
  const error = event.error as Record<string, unknown> | undefined;
  const status = typeof error?.code === "number" ? error.code : 400;
  const message = errorBodyMessage(event) ?? "SGLang reported an error in the stream";
  const options: APIErrorOptions = {
    status,
    ...context,
    ...(typeof error?.retryable === "boolean" ? { retryable: error.retryable } : {}),
  };
  return byMessage(message, options) ?? apiErrorForStatus(status, message, options);
}

/** A result whose `finish_reason.type` is "abort". */
export function errorFromAbort(reason: Extract<SglangFinishReason, { type: "abort" }>, context: ErrorContext): APIError {
  const message = reason.message ?? "Aborted";
  const status = typeof reason.status_code === "number" ? reason.status_code : undefined;
  const options: APIErrorOptions = { ...context, ...(status !== undefined ? { status } : {}) };
  const classified = byMessage(message, options);
  if (classified) return classified;
  // A status-less abort is a cancel (client gone, /abort_request, session closed under it).
  if (status === undefined || status < 400) return new AbortedError(message, options);
  return apiErrorForStatus(status, message, options);
}
