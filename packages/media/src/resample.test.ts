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

/** Bessel I0 by its power series, for the reference filter below. */
function besselI0(x: number): number {
  let sum = 1;
  let term = 1;
  for (let k = 1; term > sum * 1e-17; k++) {
    term *= (x * x) / 4 / (k * k);
    sum += term;
  }
  return sum;
}

/**
 * The resampler's filter evaluated exactly at every tap (the default design:
 * 32 zero crossings, rolloff 0.945, Kaiser beta 8.6), written out from the
 * definition as the reference for the paths that do not do that.
 */
function exactResample(x: Float32Array, from: number, to: number): Float32Array {
  const cutoff = 0.5 * Math.min(1, to / from) * 0.945;
  const halfWidth = 32 / (2 * cutoff);
  const out = new Float32Array(Math.ceil((x.length * to) / from));
  for (let j = 0; j < out.length; j++) {
    const t = (j * from) / to;
    let acc = 0;
    for (let n = Math.max(0, Math.ceil(t - halfWidth)); n <= Math.min(x.length - 1, Math.floor(t + halfWidth)); n++) {
      const d = n - t;
      const w = d / halfWidth;
      if (w <= -1 || w >= 1) continue;
      const a = 2 * Math.PI * cutoff * d;
      acc += (x[n] as number) * 2 * cutoff * (a === 0 ? 1 : Math.sin(a) / a) * (besselI0(8.6 * Math.sqrt(1 - w * w)) / besselI0(8.6));
    }
    out[j] = acc;
  }
  return out;
}

/** Power of `y` against `reference` over the middle of the signal, in dB (edges skipped: the filter sees zeros there). */
function snrDb(y: Float32Array, reference: (i: number) => number): number {
  let signal = 0;
  let error = 0;
  for (let i = Math.floor(y.length / 8); i < Math.floor((7 * y.length) / 8); i++) {
    signal += reference(i) ** 2;
    error += ((y[i] as number) - reference(i)) ** 2;
  }
  return 10 * Math.log10(signal / error);
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
    for (const rate of [48000, 44100, 8000, 44101]) {
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

  it("resamples odd rates (no small rational ratio) as cleanly as standard ones", () => {
    // 44100 -> 16000 has 160 phases and exact per-phase taps; 44101 and 95999 have 16000
    // phases and interpolate a sampled kernel; 47996 (4000 phases) was an 8 MB table.
    for (const rate of [44100, 44101, 95999, 47996]) {
      const y = resample(tone(1000, rate, rate / 2 + (rate % 2) / 2), rate, 16000);
      expect(snrDb(y, (i) => 0.5 * Math.sin((2 * Math.PI * 1000 * i) / 16000))).toBeGreaterThan(100);
    }
  });

  it("matches the exactly evaluated filter to float precision at odd rates, broadband input included", () => {
    let seed = 99;
    const noise = new Float32Array(12000).map(() => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed / 2147483648 - 0.5;
    });
    for (const rate of [44101, 95999]) {
      const y = resample(noise, rate, 16000);
      const reference = exactResample(noise, rate, 16000);
      expect(y.length).toBe(reference.length);
      // The kernel interpolation error (~-116 dB here) sits under 16-bit quantisation noise (-98 dB).
      expect(snrDb(y, (i) => reference[i] as number)).toBeGreaterThan(110);
      for (let i = 0; i < y.length; i++) expect(Math.abs((y[i] as number) - (reference[i] as number))).toBeLessThan(1e-6);
    }
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
