import { describe, expect, it } from "vitest";
import { InvalidInputError } from "../core/session-errors.js";
import { bytesToInt16, PcmResampler, toInt16, validateSampleRate } from "./pcm.js";

describe("pcm", () => {
  it("converts Float32 to int16 with clipping and refuses non-finite samples", () => {
    expect(Array.from(toInt16(new Float32Array([0, 1, -1, 2, -2, 0.5])))).toEqual([0, 32767, -32768, 32767, -32768, 16384]);
    expect(() => toInt16(new Float32Array([Number.NaN]))).toThrow(InvalidInputError);
  });

  it("validates sample rates", () => {
    expect(validateSampleRate(48_000)).toBe(48_000);
    for (const rate of [7999, 192_001, 16_000.5, "16000"]) expect(() => validateSampleRate(rate)).toThrow(InvalidInputError);
  });

  it("resamples in pieces exactly as in one go", () => {
    const input = Int16Array.from({ length: 4800 }, (_, i) => Math.round(10_000 * Math.sin((2 * Math.PI * 1000 * i) / 48_000)));
    const whole = new PcmResampler(48_000, 16_000).push(input);
    const streaming = new PcmResampler(48_000, 16_000);
    const pieces = [0, 1000, 1001, 2500, 4800];
    const parts: number[] = [];
    for (let i = 0; i + 1 < pieces.length; i++) parts.push(...streaming.push(input.subarray(pieces[i], pieces[i + 1])));
    expect(parts).toEqual(Array.from(whole));
    // A 1 kHz tone keeps its amplitude at 16 kHz (away from the edges).
    const middle = Array.from(whole.subarray(200, 1200));
    expect(Math.max(...middle)).toBeGreaterThan(9_500);
    expect(Math.max(...middle)).toBeLessThan(10_500);
    expect(new PcmResampler(16_000, 16_000).push(input)).toBe(input);
  });

  it("reads int16 from unaligned bytes", () => {
    const backing = new Uint8Array(7);
    backing.set([1, 0, 2, 0], 1);
    expect(Array.from(bytesToInt16(backing.subarray(1, 5)))).toEqual([1, 2]);
  });
});
