// PCM conversions and channel mixing. Int16 maps to float as s / 32768 and
// back as round(x * 32768) clamped to [-32768, 32767], so int16 -> float ->
// int16 is lossless. Byte forms are little-endian whatever the host.

import { MediaError, checkFinite } from "./errors.js";

/** Int16 samples to floats in [-1, 1). */
export function pcm16ToFloat32(pcm: Int16Array): Float32Array {
  const out = new Float32Array(pcm.length);
  for (let i = 0; i < pcm.length; i++) out[i] = (pcm[i] as number) / 32768;
  return out;
}

/** Floats to int16; values outside [-1, 1) saturate. NaN/Infinity are refused (the error names the index). */
export function float32ToPcm16(samples: Float32Array): Int16Array {
  checkFinite(samples);
  const out = new Int16Array(samples.length);
  for (let i = 0; i < samples.length; i++) {
    const v = Math.round((samples[i] as number) * 32768);
    out[i] = v > 32767 ? 32767 : v < -32768 ? -32768 : v;
  }
  return out;
}

/** Little-endian int16 bytes (e.g. `PcmAudio.pcm16`) to floats. Odd byte counts are refused. */
export function pcm16BytesToFloat32(bytes: Uint8Array): Float32Array {
  if (bytes.length % 2 !== 0) {
    throw new MediaError("invalid_length", `PCM16 data must have an even number of bytes, got ${bytes.length}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(bytes.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = view.getInt16(2 * i, true) / 32768;
  return out;
}

/** Floats to little-endian int16 bytes (e.g. for `PcmAudio.pcm16`). */
export function float32ToPcm16Bytes(samples: Float32Array): Uint8Array {
  const pcm = float32ToPcm16(samples);
  const bytes = new Uint8Array(pcm.length * 2);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < pcm.length; i++) view.setInt16(2 * i, pcm[i] as number, true);
  return bytes;
}

/** Averages interleaved multi-channel audio to mono. One channel returns a copy. */
export function downmix(interleaved: Float32Array, channels: number): Float32Array {
  if (!Number.isInteger(channels) || channels < 1) {
    throw new MediaError("not_mono", `channels must be a positive integer, got ${String(channels)}`);
  }
  if (interleaved.length % channels !== 0) {
    throw new MediaError(
      "invalid_length",
      `interleaved audio of ${interleaved.length} samples is not a whole number of ${channels}-channel frames`,
    );
  }
  checkFinite(interleaved);
  if (channels === 1) return interleaved.slice();
  const frames = interleaved.length / channels;
  const out = new Float32Array(frames);
  for (let f = 0; f < frames; f++) {
    let sum = 0;
    for (let c = 0; c < channels; c++) sum += interleaved[f * channels + c] as number;
    out[f] = sum / channels;
  }
  return out;
}
