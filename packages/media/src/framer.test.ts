import { describe, expect, it } from "vitest";
import { type AudioChunk, ChunkFramer } from "./framer.js";

function pushAll(framer: ChunkFramer, x: Float32Array, sizes: number[]): AudioChunk[] {
  const out: AudioChunk[] = [];
  let pos = 0;
  let i = 0;
  while (pos < x.length) {
    const n = Math.min(sizes[i++ % sizes.length] as number, x.length - pos);
    out.push(...framer.push(x.subarray(pos, pos + n)));
    pos += n;
  }
  return out;
}

describe("ChunkFramer", () => {
  it("cuts arbitrary pushes into exact 200 ms chunks with seq and input time", () => {
    const x = new Float32Array(16000 + 1234).map((_, i) => i / 1e5);
    const chunks = pushAll(new ChunkFramer({ sampleRate: 16000 }), x, [1, 999, 3200, 7, 5000, 0, 64]);
    expect(chunks.map((c) => c.seq)).toEqual([0, 1, 2, 3, 4]);
    expect(chunks.map((c) => c.startMs)).toEqual([0, 200, 400, 600, 800]);
    for (const c of chunks) {
      expect(c.durationMs).toBe(200);
      expect(c.samples.length).toBe(3200);
      expect(c.samples[0]).toBe(x[c.seq * 3200]);
    }
  });

  it("keeps boundaries on input time when 200 ms is not a whole number of samples", () => {
    const rate = 44101;
    const framer = new ChunkFramer({ sampleRate: rate });
    const chunks = pushAll(framer, new Float32Array(rate * 3), [4096]);
    expect(chunks.length).toBe(15);
    expect(chunks.reduce((n, c) => n + c.samples.length, 0)).toBe(rate * 3);
    expect(new Set(chunks.map((c) => c.samples.length))).toEqual(new Set([8820, 8821]));
  });

  it("handles interleaved stereo and a resumed seq", () => {
    const framer = new ChunkFramer({ sampleRate: 8000, channels: 2, startSeq: 10 });
    const chunks = framer.push(new Float32Array(1600 * 2 * 2 + 2));
    expect(chunks.map((c) => [c.seq, c.startMs, c.samples.length])).toEqual([
      [10, 2000, 3200],
      [11, 2200, 3200],
    ]);
    expect(framer.nextSeq).toBe(12);
  });

  it("flushes the tail padded or exact", () => {
    const a = new ChunkFramer({ sampleRate: 16000 });
    a.push(new Float32Array(3200 + 800).fill(0.5));
    const padded = a.flush({ pad: true });
    expect(padded).toMatchObject({ seq: 1, startMs: 200, durationMs: 200 });
    expect(padded?.samples.length).toBe(3200);
    expect(padded?.samples[799]).toBe(0.5);
    expect(padded?.samples[800]).toBe(0);
    expect(a.flush()).toBeNull();
    const b = new ChunkFramer({ sampleRate: 16000 });
    b.push(new Float32Array(800));
    expect(b.flush()).toMatchObject({ seq: 0, durationMs: 50 });
  });

  it("refuses bad options, ragged interleaving and NaN", () => {
    expect(() => new ChunkFramer({ sampleRate: -1 })).toThrow(expect.objectContaining({ code: "invalid_sample_rate" }));
    expect(() => new ChunkFramer({ sampleRate: 16000, channels: 0 })).toThrow(expect.objectContaining({ code: "not_mono" }));
    expect(() => new ChunkFramer({ sampleRate: 16000, chunkMs: 0 })).toThrow(expect.objectContaining({ code: "invalid_option" }));
    const stereo = new ChunkFramer({ sampleRate: 16000, channels: 2 });
    expect(() => stereo.push(new Float32Array(3))).toThrow(expect.objectContaining({ code: "invalid_length" }));
    const mono = new ChunkFramer({ sampleRate: 16000 });
    mono.push(new Float32Array(100));
    expect(() => mono.push(Float32Array.of(0, Number.NaN))).toThrow(/sample 101 is NaN/);
  });
});
