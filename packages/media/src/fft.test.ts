import { describe, expect, it } from "vitest";
import { RealFft } from "./fft.js";

function naiveDft(x: Float64Array): { re: Float64Array; im: Float64Array } {
  const n = x.length;
  const re = new Float64Array(n / 2 + 1);
  const im = new Float64Array(n / 2 + 1);
  for (let k = 0; k <= n / 2; k++) {
    for (let t = 0; t < n; t++) {
      // Reduce k*t mod n first so the angle stays small and the reference stays accurate.
      const a = (2 * Math.PI * ((k * t) % n)) / n;
      re[k] = (re[k] as number) + (x[t] as number) * Math.cos(a);
      im[k] = (im[k] as number) - (x[t] as number) * Math.sin(a);
    }
  }
  return { re, im };
}

describe("RealFft", () => {
  for (const size of [4, 8, 16, 32, 64, 128, 1024]) {
    it(`matches a direct DFT at size ${size}`, () => {
      const x = new Float64Array(size).map((_, i) => Math.sin(i * 1.7) + 0.3 * Math.cos(i * i * 0.01) - 0.1);
      const fft = new RealFft(size);
      const re = new Float64Array(size / 2 + 1);
      const im = new Float64Array(size / 2 + 1);
      fft.forward(x, re, im);
      const ref = naiveDft(x);
      for (let k = 0; k <= size / 2; k++) {
        expect(re[k]).toBeCloseTo(ref.re[k] as number, 9);
        expect(im[k]).toBeCloseTo(ref.im[k] as number, 9);
      }
    });
  }

  it("puts a pure cosine in one bin", () => {
    const x = new Float64Array(1024).map((_, i) => Math.cos((2 * Math.PI * 37 * i) / 1024));
    const re = new Float64Array(513);
    const im = new Float64Array(513);
    new RealFft(1024).forward(x, re, im);
    expect(re[37]).toBeCloseTo(512, 9);
    expect(Math.abs(re[36] as number) + Math.abs(im[38] as number)).toBeLessThan(1e-9);
  });

  it("magnitude() windows, zero-pads and matches |forward()| on every bin", () => {
    for (const size of [8, 1024]) {
      const fft = new RealFft(size);
      const len = Math.floor(size * 0.78) | 1; // odd length: exercises the half-filled pair
      const x = new Float64Array(len).map((_, i) => Math.sin(i * 0.37) - 0.2);
      const w = new Float64Array(len).map((_, i) => 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / len));
      const padded = new Float64Array(size);
      for (let i = 0; i < len; i++) padded[i] = (x[i] as number) * (w[i] as number);
      const re = new Float64Array(size / 2 + 1);
      const im = new Float64Array(size / 2 + 1);
      fft.forward(padded, re, im);
      const mag = new Float64Array(size / 2 + 1);
      fft.magnitude(x, w, mag);
      for (let k = 0; k <= size / 2; k++) expect(mag[k]).toBeCloseTo(Math.hypot(re[k] as number, im[k] as number), 10);
      // A bin range leaves the rest untouched; a longer signal first does not leak into a shorter one.
      fft.forward(new Float64Array(size).fill(1), re, im);
      const part = new Float64Array(size / 2 + 1).fill(-1);
      fft.magnitude(x, w, part, 1, size / 2);
      expect(part[0]).toBe(-1);
      expect(part[size / 2]).toBe(-1);
      expect(part[1]).toBeCloseTo(mag[1] as number, 10);
    }
  });

  it("refuses sizes that are not powers of two", () => {
    for (const size of [0, 2, 6, 1000, 1.5]) {
      expect(() => new RealFft(size)).toThrow(expect.objectContaining({ code: "invalid_option" }));
    }
  });
});
