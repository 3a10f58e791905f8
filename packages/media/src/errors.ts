// The one error type of @microturn/media: bad input is refused with a code a
// caller can switch on and a message that says what was wrong and where.

export type MediaErrorCode =
  /** Sample rate not a positive finite number (or not an integer where one is needed). */
  | "invalid_sample_rate"
  /** Channel count invalid, or multi-channel audio where mono is needed (see `downmix`). */
  | "not_mono"
  /** A NaN or ±Infinity sample; the message names the index. */
  | "non_finite_sample"
  /** Buffer length does not match the declared shape (PCM bytes, interleaved channels, RGB frame). */
  | "invalid_length"
  /** Frame width/height zero, negative or not an integer. */
  | "invalid_dimensions"
  /** An option value out of range. */
  | "invalid_option"
  /** Output past a hard size cap (a frame's patches over MAX_PATCH_BYTES); the message names the frame size. */
  | "too_large";

const BRAND = Symbol.for("microturn.MediaError");

/** Thrown by every function of @microturn/media on bad input; the process stays up. */
export class MediaError extends Error {
  readonly code: MediaErrorCode;

  constructor(code: MediaErrorCode, message: string) {
    super(message);
    this.name = "MediaError";
    this.code = code;
    Object.defineProperty(this, BRAND, { value: true });
  }

  /** True for a MediaError from any copy of this package (checks the brand, not the prototype). */
  static isInstance(value: unknown): value is MediaError {
    return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }
}

/** Throws unless `sampleRate` is a positive finite integer. */
export function checkSampleRate(sampleRate: number, what = "sampleRate"): void {
  if (typeof sampleRate !== "number" || !Number.isFinite(sampleRate) || sampleRate <= 0 || !Number.isInteger(sampleRate)) {
    throw new MediaError("invalid_sample_rate", `${what} must be a positive integer in Hz, got ${String(sampleRate)}`);
  }
}

/** Throws unless every sample is finite; the error names the first bad index. */
export function checkFinite(samples: ArrayLike<number>, offset = 0): void {
  for (let i = 0; i < samples.length; i++) {
    const v = samples[i] as number;
    // v - v is 0 for finite numbers and NaN for NaN/±Infinity: one test for both.
    if (v - v !== 0) {
      throw new MediaError("non_finite_sample", `sample ${offset + i} is ${String(v)}; audio samples must be finite`);
    }
  }
}

/** Throws unless `channels` is 1. */
export function checkMono(channels: number): void {
  if (channels !== 1) {
    throw new MediaError(
      "not_mono",
      `dMel needs mono audio, got ${String(channels)} channels; mix it down first with downmix(samples, channels)`,
    );
  }
}
