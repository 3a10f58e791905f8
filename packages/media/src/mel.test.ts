import { describe, expect, it } from "vitest";
import { denseMelFilterbank, hzToMel, melFilterbank, melToHz } from "./mel.js";

describe("Slaney mel scale", () => {
  it("is linear below 1 kHz and logarithmic above", () => {
    expect(hzToMel(500)).toBeCloseTo(7.5, 12);
    expect(hzToMel(1000)).toBeCloseTo(15, 12);
    expect(hzToMel(6400)).toBeCloseTo(42, 12);
    for (const hz of [0, 80, 999, 1000, 3000, 7600]) expect(melToHz(hzToMel(hz))).toBeCloseTo(hz, 9);
  });
});

describe("melFilterbank", () => {
  const fb = melFilterbank(16000, 1024, 80, 80, 7600);
  const dense = denseMelFilterbank(fb);
  const corners = Array.from({ length: 82 }, (_, i) => melToHz(hzToMel(80) + ((hzToMel(7600) - hzToMel(80)) * i) / 81));

  it("has 80 non-empty triangles inside their corners with Slaney peak height", () => {
    expect(fb.bins).toBe(513);
    for (let m = 0; m < 80; m++) {
      const row = dense.subarray(m * 513, (m + 1) * 513);
      const nz = [...row.keys()].filter((k) => (row[k] as number) > 0);
      expect(nz.length).toBeGreaterThan(0);
      expect((nz[0] as number) * 15.625).toBeGreaterThan(corners[m] as number);
      expect((nz[nz.length - 1] as number) * 15.625).toBeLessThan(corners[m + 2] as number);
      expect(Math.max(...row)).toBeLessThanOrEqual(2 / ((corners[m + 2] as number) - (corners[m] as number)) + 1e-15);
    }
  });

  it("gives wide filters unit area in Hz", () => {
    for (let m = 40; m < 80; m++) {
      let sum = 0;
      for (let k = 0; k < 513; k++) sum += dense[m * 513 + k] as number;
      expect(sum * 15.625).toBeGreaterThan(0.98);
      expect(sum * 15.625).toBeLessThan(1.02);
    }
  });

  it("evaluates the triangle at a bin exactly", () => {
    // Bin 64 = 1000 Hz; pick the filter whose rising edge contains it and recompute by hand.
    const m = corners.findIndex((c, i) => c <= 1000 && (corners[i + 1] as number) > 1000);
    const lo = corners[m] as number;
    const mid = corners[m + 1] as number;
    const hi = corners[m + 2] as number;
    expect(dense[m * 513 + 64]).toBeCloseTo(((1000 - lo) / (mid - lo)) * (2 / (hi - lo)), 15);
  });
});
