// SDK errors (what SGLang said) to engine errors (what the orchestrator acts on).
import {
  AbortError,
  AbortedError,
  BadRequestError,
  ConnectionError,
  ContextLengthExceededError,
  DeadlineExceededError,
  FailedPreconditionError,
  NotFoundError,
  PermissionDeniedError,
  ResourceExhaustedError,
  SessionBusyError,
  TimeoutError,
  UnauthenticatedError,
  UnavailableError,
} from "@microturn/sdk";
import { EngineError, type EngineErrorCode } from "../errors.js";

// Order matters: subclasses before their parents.
const CODES: ReadonlyArray<readonly [{ isInstance(value: unknown): boolean }, EngineErrorCode]> = [
  [SessionBusyError, "busy"],
  [NotFoundError, "unknown_session"],
  [ContextLengthExceededError, "too_large"],
  [FailedPreconditionError, "invalid_argument"],
  [BadRequestError, "invalid_argument"],
  [AbortError, "aborted"],
  [AbortedError, "aborted"],
  [UnavailableError, "unavailable"],
  [ResourceExhaustedError, "unavailable"],
  [DeadlineExceededError, "unavailable"],
  [ConnectionError, "unavailable"],
  [TimeoutError, "unavailable"],
  // A wrong key is a configuration fault, not something a retry fixes.
  [UnauthenticatedError, "internal"],
  [PermissionDeniedError, "internal"],
];

export function toEngineError(error: unknown, sessionId?: string): EngineError {
  if (EngineError.isInstance(error)) return error;
  const message = error instanceof Error ? error.message : String(error);
  const sid = sessionId ?? (error as { sessionId?: string } | undefined)?.sessionId;
  for (const [errorClass, code] of CODES) {
    if (errorClass.isInstance(error)) return new EngineError(code, `sglang-http: ${message}`, { cause: error, ...(sid ? { sessionId: sid } : {}) });
  }
  return new EngineError("internal", `sglang-http: ${message}`, { cause: error, ...(sid ? { sessionId: sid } : {}) });
}
