import { describe, expect, it } from "vitest";
import { DMEL_CHANNELS, DMEL_HOP } from "./constants.js";
import { DmelEncoder, computeDmel, dmelCodeCentre, dmelFrameCount, quantizeLogMel } from "./dmel.js";
import { MediaError } from "./errors.js";

/** Deterministic PRNG so failures reproduce. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function speechLike(n: number, rate: number, seed = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const t = i / rate;
    out[i] = 0.3 * Math.sin(2 * Math.PI * (200 + 300 * t) * t) * (0.5 + 0.5 * Math.sin(2 * Math.PI * 3 * t)) + 0.05 * (r() - 0.5);
  }
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function encodeInChunks(x: Float32Array, sizes: () => number, sampleRate = 16000): Uint8Array {
  const enc = new DmelEncoder({ sampleRate });
  const parts: Uint8Array[] = [];
  for (let pos = 0; pos < x.length; ) {
    const n = Math.min(sizes(), x.length - pos);
    const codes = enc.push(x.subarray(pos, pos + n));
    expect(codes.length % DMEL_CHANNELS).toBe(0);
    parts.push(codes);
    pos += n;
  }
  parts.push(enc.flush());
  return concat(parts);
}

describe("computeDmel", () => {
  it("yields ceil(n / 200) frames of 80 codes in 0..15", () => {
    const x = speechLike(16000 + 57, 16000);
    const d = computeDmel(x, 16000);
    expect(d.frames).toBe(81);
    expect(d.frames).toBe(dmelFrameCount(x.length));
    expect(d.channels).toBe(80);
    expect(d.codes.length).toBe(81 * 80);
    expect(Math.max(...d.codes)).toBeLessThanOrEqual(15);
    expect(new Set(d.codes).size).toBeGreaterThan(5);
  });

  it("maps silence to code 0 everywhere and an empty signal to no frames", () => {
    const d = computeDmel(new Float32Array(3200), 16000);
    expect(d.frames).toBe(16);
    expect(d.codes.every((c) => c === 0)).toBe(true);
    expect(computeDmel(new Float32Array(0), 16000).frames).toBe(0);
  });

  it("is causal: a prefix of whole hops gives the same leading frames", () => {
    const x = speechLike(8000, 16000, 3);
    const whole = computeDmel(x, 16000).codes;
    for (const frames of [1, 5, 16, 39]) {
      expect(computeDmel(x.subarray(0, frames * DMEL_HOP), 16000).codes).toEqual(whole.subarray(0, frames * DMEL_CHANNELS));
    }
  });

  it("puts a 1 kHz tone's loudest band around 1 kHz", () => {
    const x = new Float32Array(3200).map((_, n) => 0.5 * Math.sin((2 * Math.PI * 1000 * n) / 16000));
    const frame = computeDmel(x, 16000).codes.subarray(10 * 80, 11 * 80);
    const peak = frame.indexOf(Math.max(...frame));
    // Band 25 of the Slaney scale over 80-7600 Hz is centred near 1 kHz.
    expect(peak).toBeGreaterThanOrEqual(24);
    expect(peak).toBeLessThanOrEqual(26);
  });

  it("refuses bad sample rates, multi-channel sources and non-finite samples", () => {
    const x = new Float32Array(400);
    for (const rate of [0, -16000, Number.NaN, Number.POSITIVE_INFINITY, 16000.5]) {
      expect(() => computeDmel(x, rate)).toThrow(expect.objectContaining({ code: "invalid_sample_rate" }));
    }
    expect(() => computeDmel(x, 16000, { channels: 2 })).toThrow(/downmix/);
    const bad = new Float32Array(400);
    bad[123] = Number.NaN;
    let caught: unknown;
    try {
      computeDmel(bad, 16000);
    } catch (error) {
      caught = error;
    }
    expect(MediaError.isInstance(caught)).toBe(true);
    expect((caught as MediaError).code).toBe("non_finite_sample");
    expect((caught as MediaError).message).toMatch(/sample 123 is NaN/);
  });
});

describe("DmelEncoder", () => {
  it("gives the whole-signal codes for any chunking (random sizes, 0 to 900 samples)", () => {
    const x = speechLike(16000 * 2 + 77, 16000, 5);
    const whole = computeDmel(x, 16000).codes;
    for (let seed = 1; seed <= 20; seed++) {
      const r = rng(seed);
      expect(encodeInChunks(x, () => Math.floor(r() * 900))).toEqual(whole);
    }
    expect(encodeInChunks(x, () => 1)).toEqual(whole);
    expect(encodeInChunks(x, () => 3200)).toEqual(whole);
  });

  it("emits 16 frames per 200 ms chunk as each chunk arrives", () => {
    const enc = new DmelEncoder();
    const x = speechLike(3200 * 3, 16000, 9);
    for (let c = 0; c < 3; c++) {
      expect(enc.push(x.subarray(c * 3200, (c + 1) * 3200)).length).toBe(16 * 80);
    }
    expect(enc.frames).toBe(48);
    expect(enc.flush().length).toBe(0);
  });

  it("resets on flush so the next stream starts from silence", () => {
    const enc = new DmelEncoder();
    const a = speechLike(1000, 16000, 2);
    const b = speechLike(1300, 16000, 4);
    enc.push(a);
    enc.flush();
    expect(concat([enc.push(b), enc.flush()])).toEqual(computeDmel(b, 16000).codes);
  });

  it("resamples 48 kHz input and still streams exactly", () => {
    const x = speechLike(48000 + 999, 48000, 6);
    const whole = computeDmel(x, 48000);
    expect(whole.frames).toBe(Math.ceil(Math.ceil((x.length * 16000) / 48000) / 200));
    for (let seed = 1; seed <= 5; seed++) {
      const r = rng(seed);
      expect(encodeInChunks(x, () => Math.floor(r() * 3000), 48000)).toEqual(whole.codes);
    }
    // A 1 kHz tone keeps its band after resampling from 44.1 kHz.
    const tone = new Float32Array(44100).map((_, n) => 0.5 * Math.sin((2 * Math.PI * 1000 * n) / 44100));
    const at16 = computeDmel(new Float32Array(16000).map((_, n) => 0.5 * Math.sin((2 * Math.PI * 1000 * n) / 16000)), 16000);
    const at44 = computeDmel(tone, 44100);
    const mid = (d: typeof at16) => d.codes.subarray(40 * 80, 41 * 80);
    let maxDiff = 0;
    for (let m = 0; m < 80; m++) maxDiff = Math.max(maxDiff, Math.abs((mid(at16)[m] as number) - (mid(at44)[m] as number)));
    expect(maxDiff).toBeLessThanOrEqual(1);
  });

  it("names the absolute index of a bad sample across pushes", () => {
    const enc = new DmelEncoder();
    enc.push(new Float32Array(500));
    const bad = new Float32Array(10);
    bad[4] = Number.POSITIVE_INFINITY;
    expect(() => enc.push(bad)).toThrow(/sample 504 is Infinity/);
  });
});

describe("quantizeLogMel", () => {
  it("maps each centre to its code, clamps, and rounds ties up", () => {
    for (let c = 0; c < 16; c++) expect(quantizeLogMel(dmelCodeCentre(c))).toBe(c);
    expect(quantizeLogMel(-50)).toBe(0);
    expect(quantizeLogMel(50)).toBe(15);
    expect(quantizeLogMel(-7 + 0.3 + 1e-12)).toBe(1);
    expect(quantizeLogMel(-7 + 0.3 - 1e-12)).toBe(0);
    expect(dmelCodeCentre(15)).toBeCloseTo(2, 12);
  });
});
