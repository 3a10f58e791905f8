// Reconnect delays: exponential with full jitter, capped, for a bounded number of tries.

export interface ReconnectOptions {
  /** Reconnect at all after a dropped stream; default true. */
  enabled?: boolean;
  /** Tries before giving up; default 6. */
  maxAttempts?: number;
  /** Delay cap of the first retry, in ms; default 100. */
  initialDelayMs?: number;
  /** Upper bound of any delay, in ms; default 5000. */
  maxDelayMs?: number;
  /** Growth per attempt; default 2. */
  multiplier?: number;
  /** Share of the delay drawn at random, 0..1; default 1 (full jitter). */
  jitter?: number;
  /** Time one resume attempt may take before it counts as failed, in ms; default 10000. */
  attemptTimeoutMs?: number;
}

export type ResolvedReconnectOptions = Required<ReconnectOptions>;

export function resolveReconnectOptions(options: ReconnectOptions = {}): ResolvedReconnectOptions {
  return {
    enabled: options.enabled ?? true,
    maxAttempts: options.maxAttempts ?? 6,
    initialDelayMs: options.initialDelayMs ?? 100,
    maxDelayMs: options.maxDelayMs ?? 5000,
    multiplier: options.multiplier ?? 2,
    jitter: Math.min(1, Math.max(0, options.jitter ?? 1)),
    attemptTimeoutMs: options.attemptTimeoutMs ?? 10_000,
  };
}

/** Delay before attempt `attempt` (1-based); `random` is injectable for tests. */
export function backoffDelayMs(attempt: number, options: ResolvedReconnectOptions, random: () => number = Math.random): number {
  const ceiling = Math.min(options.maxDelayMs, options.initialDelayMs * options.multiplier ** Math.max(0, attempt - 1));
  const jittered = ceiling * (1 - options.jitter) + ceiling * options.jitter * random();
  return Math.round(jittered);
}
