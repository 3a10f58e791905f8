// Checks on values apps pass to session calls, so bad input fails here with a
// clear message instead of as a server error later.
import { InvalidInputError } from "../core/session-errors.js";

export const MAX_VIDEO_SIDE_PX = 4096;

/** A non-negative integer number of ms that fits the wire (uint32/uint64 as JS number). */
export function validateMs(value: unknown, name: string): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0 || !Number.isSafeInteger(Math.round(value))) {
    throw new InvalidInputError(`${name} must be a finite, non-negative number of ms, got ${String(value)}`);
  }
  return Math.round(value);
}

export function validateVideoFrame(rgb: unknown, width: unknown, height: unknown): void {
  for (const [name, side] of [["width", width], ["height", height]] as const) {
    if (typeof side !== "number" || !Number.isInteger(side) || side < 1 || side > MAX_VIDEO_SIDE_PX) {
      throw new InvalidInputError(`video frame ${name} must be an integer from 1 to ${MAX_VIDEO_SIDE_PX} px, got ${String(side)}`);
    }
  }
  if (!(rgb instanceof Uint8Array) && !(rgb instanceof Uint8ClampedArray)) {
    throw new InvalidInputError("video frame must be a Uint8Array (or Uint8ClampedArray) of RGB bytes");
  }
  const expected = (width as number) * (height as number) * 3;
  if (rgb.length !== expected) {
    throw new InvalidInputError(
      `video frame of ${width as number}x${height as number} needs ${expected} RGB bytes (width × height × 3), got ${rgb.length}`,
    );
  }
}

/**
 * An option's number, or `fallback` when it is not given: finite, from `min`
 * to `max`, and a whole number unless `fraction`. Refused at construction, so
 * a bad value does not surface later as a wire encoding failure or a timer
 * that fires at once.
 */
export function optionNumber(
  value: unknown,
  name: string,
  fallback: number,
  range: { min: number; max: number; fraction?: boolean; infinite?: boolean },
): number {
  if (value === undefined) return fallback;
  // Infinity where it means "no limit" (a wait without a timeout, retries without end).
  if (range.infinite === true && value === Number.POSITIVE_INFINITY) return value;
  const whole = range.fraction === true || Number.isInteger(value);
  if (typeof value !== "number" || !Number.isFinite(value) || !whole || value < range.min || value > range.max) {
    const kind = range.fraction === true ? "a number" : "an integer";
    const orInfinity = range.infinite === true ? " (or Infinity: no limit)" : "";
    throw new InvalidInputError(`${name} must be ${kind} from ${range.min} to ${range.max}${orInfinity}, got ${String(value)}`);
  }
  return value;
}

/** The longest delay a timer takes (setTimeout fires at once beyond it). */
export const MAX_TIMER_MS = 2 ** 31 - 1;
