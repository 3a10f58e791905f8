// Timer lengths from the wire (uint32 milliseconds) or from a model's text:
// Node fires any setTimeout of 2^31 ms or more after 1 ms, so those would
// time out at once. About 24.8 days is as long as a timer can wait.
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** `ms` as a setTimeout can take it: longer waits are capped at MAX_TIMER_MS. */
export function timerMs(ms: number): number {
  return Math.min(ms, MAX_TIMER_MS);
}

/**
 * Waits for `promise`, or `ms` at most, whichever comes first; the timer is
 * cleared when the promise wins and never holds the process open. A rejection
 * of `promise` passes through.
 */
export async function waitAtMost(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([promise, new Promise<void>((resolve) => (timer = setTimeout(resolve, timerMs(ms)).unref()))]);
  } finally {
    clearTimeout(timer);
  }
}
