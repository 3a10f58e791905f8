// A background-model task asked for by the client: its updates as an async
// iterable, its final result as a promise (the handle itself is awaitable).
import { type BackgroundUpdate, TaskStatus } from "@microturn/protocol";
import { AbortError, APIError, type MicroturnError, TimeoutError } from "./error.js";
import { AsyncQueue } from "../internal/async-queue.js";

export class BackgroundTaskError extends APIError {
  static override readonly brand: string = "BackgroundTaskError";
}

export class BackgroundTask implements PromiseLike<string> {
  readonly id: string;
  readonly task: string;
  /** Resolves with the whole result when the task is DONE; rejects when it fails, times out or is cancelled. */
  readonly result: Promise<string>;
  /** Text streamed so far (RUNNING updates), replaced by the whole result when DONE; emptied when the task starts over (QUEUED). */
  content = "";
  status: TaskStatus = TaskStatus.TASK_STATUS_QUEUED;
  private readonly updateQueues = new Set<AsyncQueue<BackgroundUpdate>>();
  private settle!: { resolve(value: string): void; reject(error: MicroturnError): void };
  private readonly cancelRequest: (id: string) => void;

  constructor(id: string, task: string, cancel: (id: string) => void) {
    this.id = id;
    this.task = task;
    this.cancelRequest = cancel;
    this.result = new Promise<string>((resolve, reject) => (this.settle = { resolve, reject }));
    // A caller that only listens to updates must not get an unhandled rejection.
    this.result.catch(() => undefined);
  }

  get done(): boolean {
    return this.status >= TaskStatus.TASK_STATUS_DONE;
  }

  /** Updates from now on, ending when the task does. */
  updates(): AsyncIterableIterator<BackgroundUpdate> {
    const queue: AsyncQueue<BackgroundUpdate> = new AsyncQueue(() => this.updateQueues.delete(queue));
    if (this.done) queue.end();
    else this.updateQueues.add(queue);
    return queue;
  }

  /** Asks the server to cancel; the result then rejects with AbortError. */
  cancel(): void {
    if (!this.done) this.cancelRequest(this.id);
  }

  then<A = string, B = never>(
    onFulfilled?: ((value: string) => A | PromiseLike<A>) | null,
    onRejected?: ((reason: unknown) => B | PromiseLike<B>) | null,
  ): Promise<A | B> {
    return this.result.then(onFulfilled, onRejected);
  }

  /** @internal Called by the session for each BackgroundUpdate of this task. */
  apply(update: BackgroundUpdate): void {
    if (this.done) return;
    this.status = update.status;
    if (update.status === TaskStatus.TASK_STATUS_RUNNING) this.content += update.content;
    // QUEUED after progress: the task starts over (its session moved to another sidecar, which runs it again).
    if (update.status === TaskStatus.TASK_STATUS_QUEUED) this.content = "";
    if (update.status === TaskStatus.TASK_STATUS_DONE) this.content = update.content;
    for (const queue of this.updateQueues) queue.push(update);
    switch (update.status) {
      case TaskStatus.TASK_STATUS_DONE:
        return this.finish(undefined);
      case TaskStatus.TASK_STATUS_FAILED:
        return this.finish(new BackgroundTaskError(update.errorMessage || `task ${this.id} failed`, { retryable: false }));
      case TaskStatus.TASK_STATUS_CANCELLED:
        return this.finish(new AbortError(`task ${this.id} was cancelled`));
      case TaskStatus.TASK_STATUS_TIMED_OUT:
        return this.finish(new TimeoutError(update.errorMessage || `task ${this.id} timed out`));
      default:
        return;
    }
  }

  /** @internal Ends the task from the client side (session closed, caller aborted). */
  fail(error: MicroturnError): void {
    if (this.done) return;
    this.status = TaskStatus.TASK_STATUS_CANCELLED;
    this.finish(error);
  }

  private finish(error: MicroturnError | undefined): void {
    if (error === undefined) this.settle.resolve(this.content);
    else this.settle.reject(error);
    for (const queue of this.updateQueues) queue.end();
    this.updateQueues.clear();
  }
}
