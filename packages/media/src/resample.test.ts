import { describe, expect, it } from "vitest";
import { Resampler, resample } from "./resample.js";

function tone(hz: number, rate: number, n: number, amp = 0.5): Float32Array {
  return new Float32Array(n).map((_, i) => amp * Math.sin((2 * Math.PI * hz * i) / rate));
}

/** Amplitude of the `hz` component over the middle of x (skips the edges), by correlation. */
function amplitudeAt(x: Float32Array, hz: number, rate: number): number {
  const from = Math.floor(x.length / 4);
  const to = Math.floor((3 * x.length) / 4);
  let c = 0;
  let s = 0;
  for (let i = from; i < to; i++) {
    c += (x[i] as number) * Math.cos((2 * Math.PI * hz * i) / rate);
    s += (x[i] as number) * Math.sin((2 * Math.PI * hz * i) / rate);
  }
  return (2 * Math.hypot(c, s)) / (to - from);
}

describe("resample", () => {
  it("keeps in-band tones at their level and time position (48k, 44.1k, 8k -> 16k)", () => {
    for (const rate of [48000, 44100, 22050, 8000]) {
      const x = tone(440, rate, rate);
      const y = resample(x, rate, 16000);
      expect(y.length).toBe(Math.ceil((x.length * 16000) / rate));
      expect(amplitudeAt(y, 440, 16000)).toBeCloseTo(0.5, 2);
      // Zero phase: the output at time t equals the input tone at time t.
      const i = 8000;
      expect(y[i]).toBeCloseTo(0.5 * Math.sin(2 * Math.PI * 440 * (i / 16000)), 2);
    }
  });

  it("removes content above the new Nyquist (anti-aliasing, > 60 dB)", () => {
    const x = tone(10_000, 48000, 48000);
    const y = resample(x, 48000, 16000);
    // 10 kHz would alias to 6 kHz at 16 kHz.
    expect(amplitudeAt(y, 6000, 16000)).toBeLessThan(0.5e-3);
  });

  it("streams: any split of the input gives the same output samples", () => {
    const x = new Float32Array(30000).map((_, i) => Math.sin(i * 0.01) * Math.cos(i * 0.0007) * 0.8);
    for (const rate of [48000, 44100, 8000]) {
      const whole = resample(x, rate, 16000);
      const r = new Resampler(rate, 16000);
      const parts: number[] = [];
      let seed = 7;
      for (let pos = 0; pos < x.length; ) {
        seed = (seed * 1103515245 + 12345) % 2147483648;
        const n = Math.min(seed % 1777, x.length - pos);
        parts.push(...r.push(x.subarray(pos, pos + n)));
        pos += n;
      }
      parts.push(...r.flush());
      expect(Float32Array.from(parts)).toEqual(whole);
    }
  });

  it("copies input when rates match and handles rates with a huge rational ratio", () => {
    const x = tone(300, 16000, 1000);
    expect(resample(x, 16000, 16000)).toEqual(x);
    // 44101 / 16000 has no common factor: taps are computed on the fly.
    const y = resample(tone(300, 44101, 8000), 44101, 16000);
    expect(y.length).toBe(Math.ceil((8000 * 16000) / 44101));
    expect(amplitudeAt(y, 300, 16000)).toBeCloseTo(0.5, 2);
  });

  it("refuses bad rates, options and samples", () => {
    expect(() => new Resampler(0, 16000)).toThrow(expect.objectContaining({ code: "invalid_sample_rate" }));
    expect(() => new Resampler(48000, Number.NaN)).toThrow(/toRate/);
    expect(() => new Resampler(48000, 16000, { rolloff: 2 })).toThrow(expect.objectContaining({ code: "invalid_option" }));
    const bad = new Float32Array(10);
    bad[9] = Number.NEGATIVE_INFINITY;
    expect(() => resample(bad, 48000, 16000)).toThrow(/sample 9 is -Infinity/);
  });
});
