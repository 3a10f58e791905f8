import { describe, expect, it } from "vitest";
import { downmix, float32ToPcm16, float32ToPcm16Bytes, pcm16BytesToFloat32, pcm16ToFloat32 } from "./pcm.js";

describe("PCM16 conversion", () => {
  it("round-trips every int16 value exactly", () => {
    const all = new Int16Array(65536).map((_, i) => i - 32768);
    expect(float32ToPcm16(pcm16ToFloat32(all))).toEqual(all);
    expect(pcm16ToFloat32(Int16Array.of(-32768, 16384))).toEqual(Float32Array.of(-1, 0.5));
  });

  it("saturates out-of-range floats and refuses NaN by index", () => {
    expect(float32ToPcm16(Float32Array.of(1, 1.5, -1, -3))).toEqual(Int16Array.of(32767, 32767, -32768, -32768));
    expect(() => float32ToPcm16(Float32Array.of(0, Number.NaN))).toThrow(/sample 1 is NaN/);
  });

  it("reads and writes little-endian bytes", () => {
    const bytes = float32ToPcm16Bytes(Float32Array.of(0.5, -0.5, 1 / 32768));
    expect([...bytes]).toEqual([0x00, 0x40, 0x00, 0xc0, 0x01, 0x00]);
    expect(pcm16BytesToFloat32(bytes)).toEqual(Float32Array.of(0.5, -0.5, 1 / 32768));
    // A view into a larger buffer at an odd offset reads its own bytes only.
    const big = new Uint8Array(9);
    big.set([0x00, 0x40], 3);
    expect(pcm16BytesToFloat32(big.subarray(3, 5))).toEqual(Float32Array.of(0.5));
  });

  it("refuses an odd number of bytes", () => {
    expect(() => pcm16BytesToFloat32(new Uint8Array(3))).toThrow(expect.objectContaining({ code: "invalid_length" }));
  });
});

describe("downmix", () => {
  it("averages interleaved channels", () => {
    expect(downmix(Float32Array.of(1, 0, 0.5, 0.5, -1, 1), 2)).toEqual(Float32Array.of(0.5, 0.5, 0));
    expect(downmix(Float32Array.of(0.25, 0.5), 1)).toEqual(Float32Array.of(0.25, 0.5));
  });

  it("refuses bad channel counts, ragged buffers and NaN", () => {
    expect(() => downmix(new Float32Array(4), 0)).toThrow(expect.objectContaining({ code: "not_mono" }));
    expect(() => downmix(new Float32Array(5), 2)).toThrow(expect.objectContaining({ code: "invalid_length" }));
    expect(() => downmix(Float32Array.of(0, 0, Number.NaN, 0), 2)).toThrow(/sample 2 is NaN/);
  });
});
