// A controller of one's own that also follows a caller's signal: the caller can
// cancel the work, and so can this code (a deadline, cancelAll) without
// aborting the caller's signal.

export interface FollowingController {
  readonly controller: AbortController;
  /** Stops following the caller's signal; call it when the work ends. */
  release(): void;
}

/** A new controller that aborts, with the same reason, when `parent` does (at once if it already has). */
export function followSignal(parent: AbortSignal | undefined): FollowingController {
  const controller = new AbortController();
  if (parent === undefined) return { controller, release: () => {} };
  const forward = () => controller.abort(parent.reason);
  if (parent.aborted) forward();
  else parent.addEventListener("abort", forward, { once: true });
  return { controller, release: () => parent.removeEventListener("abort", forward) };
}
