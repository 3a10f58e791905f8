import { describe, expect, it } from "vitest";
import { copyPatchDoubles, copyPatchWords, copyWordBytes, float64CopyIsExact, type PatchGeometry } from "./patch-copy.js";

function geometry(width: number, height: number, patchSize: number): PatchGeometry {
  return { width, height, patchSize, rows: Math.ceil(height / patchSize), cols: Math.ceil(width / patchSize) };
}

describe("word-wise patch copy", () => {
  it("gives the same bytes in int32 and float64 words, NaN-shaped bytes included", () => {
    for (const g of [geometry(640, 480, 40), geometry(80, 70, 40), geometry(32, 20, 8)]) {
      // Every 8-byte word of the first rows is FF...FF or a signalling-NaN pattern; the rest is varied.
      const rgb = Uint8Array.from({ length: g.width * g.height * 3 }, (_, i) => (i < 4000 ? (i % 16 < 8 ? 255 : i % 8 === 7 ? 0x7f : i % 8 === 6 ? 0xf0 : i % 8 === 0 ? 1 : 0) : (i * 131) >> 3));
      const bytes = g.rows * g.cols * g.patchSize * g.patchSize * 3;
      const viaWords = new Uint8Array(bytes);
      const viaDoubles = new Uint8Array(bytes);
      copyPatchWords(new Int32Array(rgb.buffer), new Int32Array(viaWords.buffer), g);
      copyPatchDoubles(new Float64Array(rgb.buffer), new Float64Array(viaDoubles.buffer), g);
      expect(Buffer.compare(viaWords, viaDoubles)).toBe(0);
      // Spot check against the definition: patch (1, 0) row 3 starts with frame row patchSize + 3 (clamped).
      const row = Math.min(g.patchSize + 3, g.height - 1) * g.width * 3;
      const at = (g.cols * g.patchSize * g.patchSize + 3 * g.patchSize) * 3;
      expect(Buffer.compare(viaWords.subarray(at, at + g.patchSize * 3), rgb.subarray(row, row + g.patchSize * 3))).toBe(0);
    }
  });

  it("picks the widest word the geometry and the engine allow", () => {
    // V8 (Node) keeps NaN bit patterns through float64 copies; engines that do not get int32 words.
    expect(float64CopyIsExact()).toBe(true);
    expect(copyWordBytes(640, 40)).toBe(8);
    expect(copyWordBytes(48, 12)).toBe(4);
    expect(copyWordBytes(50, 40)).toBe(0);
    expect(copyWordBytes(21, 7)).toBe(0);
  });
});
