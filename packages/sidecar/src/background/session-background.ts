// Adapts a BackgroundManager to the session's SessionBackground port, turning
// BackgroundError into the SessionFault codes the wire carries.
import { ErrorCode, type BackgroundUpdate } from "@microturn/protocol";
import { SessionFault } from "../errors.js";
import type { ConversationEntry, DelegateRequest, MovedTaskState, SessionBackground } from "../session/ports.js";
import { BackgroundError, type BackgroundErrorCode } from "./errors.js";
import type { BackgroundManager } from "./manager.js";

function faultCode(code: BackgroundErrorCode): ErrorCode {
  switch (code) {
    case "not_found":
      return ErrorCode.ERROR_CODE_NOT_FOUND;
    case "already_exists":
    case "invalid_argument":
      return ErrorCode.ERROR_CODE_INVALID_ARGUMENT;
    case "resource_exhausted":
      return ErrorCode.ERROR_CODE_RESOURCE_EXHAUSTED;
    case "timeout":
      return ErrorCode.ERROR_CODE_TIMEOUT;
    default:
      return ErrorCode.ERROR_CODE_BACKGROUND_UNAVAILABLE;
  }
}

/** Rethrows a BackgroundError as the SessionFault the client should see. */
export function toSessionFault(err: unknown): unknown {
  if (!BackgroundError.isInstance(err)) return err;
  return new SessionFault(faultCode(err.code), err.message, { retryable: err.retryable, cause: err });
}

export class ManagerSessionBackground implements SessionBackground {
  constructor(private readonly manager: BackgroundManager) {}

  start(request: DelegateRequest): string {
    try {
      return this.manager.start(request);
    } catch (err) {
      throw toSessionFault(err);
    }
  }

  cancel(taskId: string): void {
    try {
      this.manager.cancel(taskId);
    } catch (err) {
      throw toSessionFault(err);
    }
  }

  cancelAll(): void {
    this.manager.cancelAll();
  }

  /** Tasks accepted and not finished: running plus queued. */
  get running(): number {
    return this.manager.runningCount + this.manager.queuedCount;
  }

  onUpdate(listener: (update: BackgroundUpdate) => void): void {
    this.manager.on("update", listener);
  }

  get idsMade(): number {
    return this.manager.idsMade;
  }

  release(): MovedTaskState[] {
    return this.manager.release();
  }

  adopt(idsMade: number, tasks: readonly MovedTaskState[], conversation: ConversationEntry[]): void {
    this.manager.adopt(idsMade, tasks, conversation);
  }
}
