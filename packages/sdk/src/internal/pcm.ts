// PCM conversion and resampling for outgoing audio.
// TODO(media): replace with @microturn/media (PCM helpers, resample) once it lands.
import { InvalidInputError } from "../core/session-errors.js";

export const MIN_SAMPLE_RATE_HZ = 8000;
export const MAX_SAMPLE_RATE_HZ = 192_000;

export function validateSampleRate(sampleRateHz: unknown): number {
  if (
    typeof sampleRateHz !== "number" ||
    !Number.isInteger(sampleRateHz) ||
    sampleRateHz < MIN_SAMPLE_RATE_HZ ||
    sampleRateHz > MAX_SAMPLE_RATE_HZ
  ) {
    throw new InvalidInputError(
      `sample rate must be an integer from ${MIN_SAMPLE_RATE_HZ} to ${MAX_SAMPLE_RATE_HZ} Hz, got ${String(sampleRateHz)}`,
    );
  }
  return sampleRateHz;
}

/** Mono samples as int16; Float32 in [-1, 1] is scaled and clipped, NaN/Infinity refused. */
export function toInt16(samples: Int16Array | Float32Array): Int16Array {
  if (samples instanceof Int16Array) return samples;
  if (!(samples instanceof Float32Array)) {
    throw new InvalidInputError("audio samples must be an Int16Array or a Float32Array (mono)");
  }
  const out = new Int16Array(samples.length);
  for (let i = 0; i < samples.length; i++) {
    const value = samples[i]!;
    if (!Number.isFinite(value)) {
      throw new InvalidInputError(`audio sample ${i} is ${value}; Float32 samples must be finite, in [-1, 1]`);
    }
    const clipped = value > 1 ? 1 : value < -1 ? -1 : value;
    out[i] = clipped < 0 ? Math.round(clipped * 32768) : Math.round(clipped * 32767);
  }
  return out;
}

/**
 * Streaming linear-interpolation resampler: successive `push` calls give the
 * same output as one call on the concatenated input, because the last input
 * sample and the fractional read position carry over.
 */
export class LinearResampler {
  readonly fromRateHz: number;
  readonly toRateHz: number;
  private readonly step: number;
  private position = 0;
  private previous: number | undefined;

  constructor(fromRateHz: number, toRateHz: number) {
    this.fromRateHz = fromRateHz;
    this.toRateHz = toRateHz;
    this.step = fromRateHz / toRateHz;
  }

  push(input: Int16Array): Int16Array {
    if (this.fromRateHz === this.toRateHz) return input;
    if (input.length === 0) return input;
    const n = input.length;
    const at = (i: number): number => (i < 0 ? (this.previous ?? input[0]!) : input[i]!);
    const start = this.previous === undefined ? Math.max(0, this.position) : this.position;
    const count = start < n - 1 ? Math.ceil((n - 1 - start) / this.step) : 0;
    const out = new Int16Array(count);
    for (let k = 0; k < count; k++) {
      // Positions from the start (not accumulated) so rounding cannot drift past the last sample.
      const p = start + k * this.step;
      const i = Math.floor(p);
      const frac = p - i;
      out[k] = Math.round(at(i) * (1 - frac) + at(Math.min(i + 1, n - 1)) * frac);
    }
    this.position = start + count * this.step - n;
    this.previous = input[n - 1];
    return out;
  }
}

/** Little-endian bytes of int16 samples (every platform the SDK runs on is little-endian). */
export function int16Bytes(samples: Int16Array): Uint8Array {
  return new Uint8Array(samples.buffer, samples.byteOffset, samples.byteLength);
}

/** int16 samples from little-endian bytes (copies when unaligned). */
export function bytesToInt16(bytes: Uint8Array): Int16Array {
  const even = bytes.byteLength - (bytes.byteLength % 2);
  if (bytes.byteOffset % 2 === 0) return new Int16Array(bytes.buffer, bytes.byteOffset, even / 2);
  return new Int16Array(new Uint8Array(bytes.subarray(0, even)).buffer);
}
