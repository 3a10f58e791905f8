// Abortable waits shared by every SDK call that waits on something.
import { AbortError, TimeoutError } from "../core/error.js";

export function abortErrorFor(signal: AbortSignal, what: string): AbortError {
  const reason: unknown = signal.reason;
  if (AbortError.isInstance(reason) || TimeoutError.isInstance(reason)) return reason as AbortError;
  return new AbortError(`${what} was aborted`, { cause: reason });
}

export function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw abortErrorFor(signal, what);
}

/** Resolves after `ms`, or rejects with AbortError when `signal` fires first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortErrorFor(signal, "wait"));
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortErrorFor(signal!, "wait"));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Waits for `promise`, giving up with AbortError when `signal` fires or with
 * TimeoutError after `timeoutMs` (when given). The promise itself is not
 * cancelled; callers clean up through their own signal.
 */
export function race<T>(promise: Promise<T>, what: string, signal?: AbortSignal, timeoutMs?: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    if (signal?.aborted) return reject(abortErrorFor(signal, what));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const cleanup = (): void => {
      if (timer !== undefined) clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    };
    const onAbort = (): void => {
      cleanup();
      reject(abortErrorFor(signal!, what));
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    if (timeoutMs !== undefined && Number.isFinite(timeoutMs)) {
      timer = setTimeout(() => {
        cleanup();
        reject(new TimeoutError(`${what} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
    }
    promise.then(
      (value) => {
        cleanup();
        resolve(value);
      },
      (error: unknown) => {
        cleanup();
        reject(error);
      },
    );
  });
}
