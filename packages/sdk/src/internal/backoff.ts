// Reconnect delays: exponential with full jitter, capped, for a bounded number of tries.
import { MAX_TIMER_MS, optionNumber } from "./validate.js";

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

/** The options with defaults filled in; a bad value throws InvalidInputError naming it. */
export function resolveReconnectOptions(options: ReconnectOptions = {}): ResolvedReconnectOptions {
  const ms = { min: 0, max: MAX_TIMER_MS };
  // Jitter outside 0..1 is taken to its nearest end, as it always was; only a value that is no number is refused.
  const jitter = typeof options.jitter === "number" && !Number.isNaN(options.jitter) ? Math.min(1, Math.max(0, options.jitter)) : options.jitter;
  return {
    enabled: options.enabled ?? true,
    maxAttempts: optionNumber(options.maxAttempts, "reconnect.maxAttempts", 6, { min: 0, max: Number.MAX_SAFE_INTEGER, infinite: true }),
    initialDelayMs: optionNumber(options.initialDelayMs, "reconnect.initialDelayMs", 100, ms),
    maxDelayMs: optionNumber(options.maxDelayMs, "reconnect.maxDelayMs", 5000, { ...ms, infinite: true }),
    multiplier: optionNumber(options.multiplier, "reconnect.multiplier", 2, { min: 0, max: 1000, fraction: true }),
    jitter: optionNumber(jitter, "reconnect.jitter", 1, { min: 0, max: 1, fraction: true }),
    attemptTimeoutMs: optionNumber(options.attemptTimeoutMs, "reconnect.attemptTimeoutMs", 10_000, { min: 1, max: MAX_TIMER_MS, infinite: true }),
  };
}

/** Delay before attempt `attempt` (1-based); `random` is injectable for tests. */
export function backoffDelayMs(attempt: number, options: ResolvedReconnectOptions, random: () => number = Math.random): number {
  // Never past what a timer can wait (a longer one fires at once).
  const ceiling = Math.min(options.maxDelayMs, options.initialDelayMs * options.multiplier ** Math.max(0, attempt - 1), MAX_TIMER_MS);
  const jittered = ceiling * (1 - options.jitter) + ceiling * options.jitter * random();
  return Math.round(jittered);
}
