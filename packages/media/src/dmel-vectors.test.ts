// The shared vectors in testdata/dmel/ come from the independent numpy
// reference (sglang-patch/microturn_sglang/dmel_reference.py); both suites
// read them, so the two encoders cannot drift apart.

import { readFileSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { DmelEncoder, computeDmel } from "./dmel.js";
import { pcm16BytesToFloat32 } from "./pcm.js";

const DIR = fileURLToPath(new URL("../../../testdata/dmel/", import.meta.url));

interface Vector {
  name: string;
  sample_rate_hz: number;
  samples: number;
  pcm16_le_base64: string;
  frames: number;
  channels: number;
  codes_hex: string;
  min_boundary_distance: number | null;
}

const vectors: Vector[] = readdirSync(DIR)
  .filter((f) => f.endsWith(".json"))
  .sort()
  .map((f) => JSON.parse(readFileSync(DIR + f, "utf8")) as Vector);

function expected(v: Vector): Uint8Array {
  return Uint8Array.from(v.codes_hex, (c) => parseInt(c, 16));
}

function samples(v: Vector): Float32Array {
  return pcm16BytesToFloat32(new Uint8Array(Buffer.from(v.pcm16_le_base64, "base64")));
}

// Every vector records how far its closest value sits from a quantiser
// boundary (>= 3e-5 in log10 units for the current set); float64 differences
// between the two encoders are ~1e-13, so codes must match exactly. The
// tolerance is zero codes off; if a future vector puts a value within ~1e-12 of
// a boundary it should be regenerated, not the tolerance raised.
const ALLOWED_OFF_BY_ONE = 0;

describe("shared dMel vectors", () => {
  it("has the required signals", () => {
    expect(vectors.map((v) => v.name)).toEqual(expect.arrayContaining(["sine_sweep", "noise", "silence", "clicks"]));
  });

  for (const v of vectors) {
    it(`matches the numpy reference on ${v.name}`, () => {
      const x = samples(v);
      expect(x.length).toBe(v.samples);
      const d = computeDmel(x, v.sample_rate_hz);
      expect(d.frames).toBe(v.frames);
      expect(d.channels).toBe(v.channels);
      const want = expected(v);
      let off = 0;
      for (let i = 0; i < want.length; i++) {
        const diff = Math.abs((d.codes[i] as number) - (want[i] as number));
        expect(diff).toBeLessThanOrEqual(1);
        off += diff;
      }
      expect(off).toBeLessThanOrEqual(ALLOWED_OFF_BY_ONE);
    });

    it(`streams ${v.name} in 200 ms chunks to the same codes`, () => {
      const x = samples(v);
      const enc = new DmelEncoder();
      const out: number[] = [];
      for (let pos = 0; pos < x.length; pos += 3200) out.push(...enc.push(x.subarray(pos, pos + 3200)));
      out.push(...enc.flush());
      expect(Uint8Array.from(out)).toEqual(expected(v));
    });
  }
});
