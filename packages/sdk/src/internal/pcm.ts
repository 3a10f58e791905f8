// PCM conversion and resampling for outgoing audio, on @microturn/media; media
// errors become the SDK's InvalidInputError.
import { float32ToPcm16, MediaError, pcm16ToFloat32, Resampler } from "@microturn/media";
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

/** Runs a @microturn/media call, turning its MediaError into the SDK's InvalidInputError. */
function fromMedia<T>(what: string, call: () => T): T {
  try {
    return call();
  } catch (err) {
    if (MediaError.isInstance(err)) throw new InvalidInputError(`${what}: ${err.message}`, { cause: err });
    throw err;
  }
}

/** Mono samples as int16; Float32 in [-1, 1] is scaled and clipped, NaN/Infinity refused. */
export function toInt16(samples: Int16Array | Float32Array): Int16Array {
  if (samples instanceof Int16Array) return samples;
  if (!(samples instanceof Float32Array)) {
    throw new InvalidInputError("audio samples must be an Int16Array or a Float32Array (mono)");
  }
  return fromMedia("audio", () => float32ToPcm16(samples));
}

/**
 * Streaming resampler to 16 kHz for outgoing audio: @microturn/media's
 * windowed-sinc Resampler (the one the sidecar's dMel path uses), on int16.
 * Successive pushes give the same output as one push of the whole signal.
 */
export class PcmResampler {
  readonly fromRateHz: number;
  readonly toRateHz: number;
  private readonly resampler: Resampler | undefined;

  constructor(fromRateHz: number, toRateHz: number) {
    this.fromRateHz = fromRateHz;
    this.toRateHz = toRateHz;
    this.resampler = fromRateHz === toRateHz ? undefined : new Resampler(fromRateHz, toRateHz);
  }

  push(input: Int16Array): Int16Array {
    if (!this.resampler || input.length === 0) return input;
    return float32ToPcm16(this.resampler.push(pcm16ToFloat32(input)));
  }

  /** The input ended (or its rate changes): the output its filter still held back. */
  flush(): Int16Array {
    return this.resampler ? float32ToPcm16(this.resampler.flush()) : new Int16Array(0);
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
