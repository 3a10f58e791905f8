import { describe, expect, it } from "vitest";
import { InvalidInputError } from "../core/session-errors.js";
import { bytesToInt16, LinearResampler, toInt16, validateSampleRate } from "./pcm.js";

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
    const input = Int16Array.from({ length: 4800 }, (_, i) => Math.round(10_000 * Math.sin(i / 7)));
    const whole = new LinearResampler(48_000, 16_000).push(input);
    const streaming = new LinearResampler(48_000, 16_000);
    const pieces = [0, 1000, 1001, 2500, 4800];
    const parts: number[] = [];
    for (let i = 0; i + 1 < pieces.length; i++) parts.push(...streaming.push(input.subarray(pieces[i], pieces[i + 1])));
    expect(whole.length).toBeGreaterThanOrEqual(1599);
    expect(parts).toEqual(Array.from(whole));
    expect(whole[10]).toBe(input[30]);
    const up = new LinearResampler(8000, 16_000).push(Int16Array.from([0, 100, 200]));
    expect(Array.from(up)).toEqual([0, 50, 100, 150]);
  });

  it("reads int16 from unaligned bytes", () => {
    const backing = new Uint8Array(7);
    backing.set([1, 0, 2, 0], 1);
    expect(Array.from(bytesToInt16(backing.subarray(1, 5)))).toEqual([1, 2]);
  });
});
