import { describe, expect, it } from "vitest";
import { MediaError } from "./errors.js";
import { downscaleRgb, scaledSize } from "./downscale.js";
import { MAX_PATCH_BYTES, Patchifier, cachedPlanSizes, patchBytes, patchify } from "./patchify.js";

/** A frame whose pixel (x, y) is (x, y, x + y) mod 256, so every byte says where it came from. */
function gradient(width: number, height: number): Uint8Array {
  const rgb = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) rgb.set([x % 256, y % 256, (x + y) % 256], (y * width + x) * 3);
  }
  return rgb;
}

function pixelOf(grid: ReturnType<typeof patchify>, row: number, col: number, px: number, py: number): number[] {
  const p = grid.patchSize;
  const at = ((row * grid.cols + col) * p * p + py * p + px) * 3;
  return [...grid.patches.subarray(at, at + 3)];
}

describe("patchify", () => {
  it("cuts 640x480 into a 12 x 16 grid of 40x40 RGB patches, row-major", () => {
    const grid = patchify(gradient(640, 480), 640, 480);
    expect(grid).toMatchObject({ rows: 12, cols: 16, patchSize: 40, width: 640, height: 480 });
    expect(grid.patches.length).toBe(12 * 16 * 40 * 40 * 3);
    expect(pixelOf(grid, 0, 0, 0, 0)).toEqual([0, 0, 0]);
    expect(pixelOf(grid, 0, 1, 0, 0)).toEqual([40, 0, 40]);
    expect(pixelOf(grid, 2, 3, 5, 7)).toEqual([125, 87, 212]);
    expect(pixelOf(grid, 11, 15, 39, 39)).toEqual([639 % 256, 479 % 256, (639 + 479) % 256]);
  });

  it("pads the right and bottom edges by repeating the last pixel", () => {
    const grid = patchify(gradient(50, 30), 50, 30);
    expect(grid).toMatchObject({ rows: 1, cols: 2 });
    // Column 1 holds x = 40..49, then repeats x = 49; rows past y = 29 repeat y = 29.
    expect(pixelOf(grid, 0, 1, 9, 0)).toEqual([49, 0, 49]);
    expect(pixelOf(grid, 0, 1, 10, 0)).toEqual([49, 0, 49]);
    expect(pixelOf(grid, 0, 1, 39, 3)).toEqual([49, 3, 52]);
    expect(pixelOf(grid, 0, 0, 12, 29)).toEqual([12, 29, 41]);
    expect(pixelOf(grid, 0, 0, 12, 39)).toEqual([12, 29, 41]);
    expect(pixelOf(grid, 0, 1, 39, 39)).toEqual([49, 29, 78]);
  });

  it("takes another patch size and a 1x1 frame", () => {
    const grid = patchify(Uint8Array.of(9, 8, 7), 1, 1, { patchSize: 2 });
    expect(grid).toMatchObject({ rows: 1, cols: 1, patchSize: 2 });
    expect([...grid.patches]).toEqual([9, 8, 7, 9, 8, 7, 9, 8, 7, 9, 8, 7]);
  });

  it("downscales first when asked, keeping the aspect ratio", () => {
    expect(scaledSize(640, 480, { maxWidth: 320 })).toEqual({ width: 320, height: 240 });
    expect(scaledSize(640, 480, { maxWidth: 1000, maxHeight: 120 })).toEqual({ width: 160, height: 120 });
    expect(scaledSize(640, 480, { scale: 0.5, maxWidth: 200 })).toEqual({ width: 200, height: 150 });
    expect(scaledSize(640, 480, { maxWidth: 2000 })).toEqual({ width: 640, height: 480 });
    const grid = patchify(gradient(640, 480), 640, 480, { scale: 0.25 });
    expect(grid).toMatchObject({ rows: 3, cols: 4, width: 160, height: 120 });
  });
});

describe("Patchifier", () => {
  it("matches patchify frame after frame, reusing its buffer", () => {
    const plan = new Patchifier(50, 30);
    expect([plan.rows, plan.cols]).toEqual([1, 2]);
    const a = gradient(50, 30);
    const b = a.map((v) => 255 - v);
    const first = plan.patchify(a);
    expect(first).toEqual(patchify(a, 50, 30).patches);
    const second = plan.patchify(b);
    expect(second).toBe(first); // same buffer, overwritten
    expect(second).toEqual(patchify(b, 50, 30).patches);
    const mine = new Uint8Array(plan.byteLength + 5);
    expect(plan.patchify(a, mine)).toEqual(first.map((v) => 255 - v));
    expect(mine.subarray(0, plan.byteLength)).toEqual(patchify(a, 50, 30).patches);
    expect(() => plan.patchify(a, new Uint8Array(10))).toThrow(expect.objectContaining({ code: "invalid_length" }));
  });

  it("returns independent copies from patchify even at a steady frame size", () => {
    const a = patchify(gradient(80, 80), 80, 80).patches;
    const before = a.slice();
    patchify(new Uint8Array(80 * 80 * 3), 80, 80);
    expect(a).toEqual(before);
  });

  it("gives the same bytes on every copy path: word copies, unaligned input or output, other patch sizes, segment plan", () => {
    /** Pixel-by-pixel reference: patch (r, c), pixel (px, py) is frame pixel (min(x, w-1), min(y, h-1)). */
    const reference = (rgb: Uint8Array, w: number, h: number, p: number): Uint8Array => {
      const rows = Math.ceil(h / p);
      const cols = Math.ceil(w / p);
      const out = new Uint8Array(rows * cols * p * p * 3);
      let at = 0;
      for (let r = 0; r < rows; r++)
        for (let c = 0; c < cols; c++)
          for (let py = 0; py < p; py++)
            for (let px = 0; px < p; px++, at += 3) {
              const from = (Math.min(r * p + py, h - 1) * w + Math.min(c * p + px, w - 1)) * 3;
              out.set(rgb.subarray(from, from + 3), at);
            }
      return out;
    };
    /** Index of the first differing byte, -1 if equal (toEqual on ~1 MB arrays is far too slow). */
    const firstDiff = (a: Uint8Array, b: Uint8Array): number => {
      if (a.length !== b.length) return Math.min(a.length, b.length);
      for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
      return -1;
    };
    let seed = 7;
    // Random bytes plus runs of FF: eight FF bytes read as a float64 are a NaN, which some engines canonicalise.
    const frame = (w: number, h: number): Uint8Array =>
      Uint8Array.from({ length: w * h * 3 }, (_, i) => ((seed = (seed * 1103515245 + 12345) % 2147483648), i % 97 < 20 ? 255 : seed >> 23));
    for (const [w, h, p] of [[640, 480, 40], [80, 50, 40], [120, 40, 40], [48, 20, 8], [24, 24, 12], [50, 30, 40], [30, 30, 7]] as const) {
      const rgb = frame(w, h);
      const want = reference(rgb, w, h, p);
      const plan = new Patchifier(w, h, p);
      expect(firstDiff(plan.patchify(rgb), want)).toBe(-1);
      // Unaligned input (a view at byte offset 1, as a decoded message field may be) and unaligned output.
      const shifted = new Uint8Array(rgb.length + 1);
      shifted.set(rgb, 1);
      const out = new Uint8Array(want.length + 3);
      expect(firstDiff(plan.patchify(shifted.subarray(1), out.subarray(3)), want)).toBe(-1);
      expect(firstDiff(out.subarray(3), want)).toBe(-1);
      expect(firstDiff(patchify(shifted.subarray(1), w, h, { patchSize: p }).patches, want)).toBe(-1);
      // In place: the frame's own bytes as the output.
      const inPlace = new Uint8Array(Math.max(rgb.length, want.length));
      inPlace.set(rgb);
      expect(firstDiff(plan.patchify(inPlace.subarray(0, rgb.length), inPlace), want)).toBe(-1);
    }
  });

  it("refuses a frame whose padded patches exceed MAX_PATCH_BYTES, before allocating or planning anything", () => {
    // 1 x 2,073,600 px is 6.2 MB of RGB and within a 1920x1080 pixel budget, but each 1-px
    // column pads out to 40: 51,840 patches, 249 MB (it once took seconds and ~900 MB of RSS).
    expect(patchBytes(1, 2_073_600)).toBe(248_832_000);
    const t0 = performance.now();
    expect(() => patchify(new Uint8Array(2_073_600 * 3), 1, 2_073_600)).toThrow(
      expect.objectContaining({ code: "too_large", message: expect.stringContaining("a 1x2073600 frame makes 248832000 bytes of 40x40 patches") }),
    );
    expect(() => new Patchifier(2_073_600, 1)).toThrow(expect.objectContaining({ code: "too_large" }));
    expect(performance.now() - t0).toBeLessThan(200);
    // The cap is the patches of an 8K UHD frame: that frame itself still patchifies.
    expect(new Patchifier(7680, 4320).byteLength).toBe(MAX_PATCH_BYTES);
    expect(() => new Patchifier(7681, 4320)).toThrow(expect.objectContaining({ code: "too_large" }));
  });

  it("keeps plans for steady video sizes but never for mostly-padding frames", () => {
    patchify(gradient(50, 30), 50, 30);
    expect(cachedPlanSizes()[0]).toEqual({ width: 50, height: 30, patchSize: 40 });
    // 2 x 20,000 px: 500 patches of 40x40 for 40,000 pixels (20x padding) and a view per pixel row.
    const narrow = patchify(gradient(2, 20_000), 2, 20_000);
    expect(narrow).toMatchObject({ rows: 500, cols: 1 });
    expect(pixelOf(narrow, 499, 0, 39, 39)).toEqual([1, 19_999 % 256, (1 + 19_999) % 256]);
    expect(cachedPlanSizes()).not.toContainEqual(expect.objectContaining({ width: 2, height: 20_000 }));
    expect(cachedPlanSizes()[0]).toEqual({ width: 50, height: 30, patchSize: 40 });
  });

  it("refuses frames of another size", () => {
    expect(() => new Patchifier(640, 480).patchify(new Uint8Array(320 * 240 * 3))).toThrow(
      expect.objectContaining({ code: "invalid_length" }),
    );
    expect(() => new Patchifier(0, 480)).toThrow(expect.objectContaining({ code: "invalid_dimensions" }));
  });
});

describe("downscaleRgb (box filter)", () => {
  it("averages whole blocks exactly and rounds half up", () => {
    // 2x2 -> 1x1: mean of 0, 1, 2, 4 for red is 1.75 -> 2; green 0, 0, 1, 0 is 0.25 -> 0; blue 1, 1, 1, 2 is 1.25 -> 1.
    const rgb = Uint8Array.of(0, 0, 1, 1, 0, 1, 2, 1, 1, 4, 0, 2);
    expect([...downscaleRgb(rgb, 2, 2, 1, 1)]).toEqual([2, 0, 1]);
    expect([...downscaleRgb(Uint8Array.of(1, 1, 1, 2, 2, 2), 2, 1, 1, 1)]).toEqual([2, 2, 2]);
  });

  it("weights partly covered pixels by overlap (3 -> 2)", () => {
    // Output 0 covers source [0, 1.5): (10 * 1 + 40 * 0.5) / 1.5 = 20; output 1 covers [1.5, 3): (40 * 0.5 + 100) / 1.5 = 80.
    const rgb = Uint8Array.of(10, 10, 10, 40, 40, 40, 100, 100, 100);
    expect([...downscaleRgb(rgb, 3, 1, 2, 1)]).toEqual([20, 20, 20, 80, 80, 80]);
  });

  it("keeps a flat colour flat at any ratio", () => {
    const rgb = new Uint8Array(97 * 61 * 3).fill(201);
    expect(downscaleRgb(rgb, 97, 61, 33, 17).every((v) => v === 201)).toBe(true);
  });
});

describe("frame validation", () => {
  it("refuses zero or fractional sizes, wrong byte counts and bad options", () => {
    const codeOf = (fn: () => unknown): string | undefined => {
      try {
        fn();
      } catch (error) {
        return MediaError.isInstance(error) ? error.code : "not a MediaError";
      }
      return undefined;
    };
    expect(codeOf(() => patchify(new Uint8Array(0), 0, 10))).toBe("invalid_dimensions");
    expect(codeOf(() => patchify(new Uint8Array(30), 2.5, 4))).toBe("invalid_dimensions");
    expect(codeOf(() => patchify(new Uint8Array(640 * 480 * 3 - 1), 640, 480))).toBe("invalid_length");
    expect(codeOf(() => patchify(new Uint8Array(640 * 480 * 4), 640, 480))).toBe("invalid_length");
    expect(codeOf(() => patchify(new Uint8Array(12), 2, 2, { scale: 0 }))).toBe("invalid_option");
    expect(codeOf(() => patchify(new Uint8Array(12), 2, 2, { scale: 2 }))).toBe("invalid_option");
    expect(codeOf(() => patchify(new Uint8Array(12), 2, 2, { maxWidth: 0 }))).toBe("invalid_dimensions");
    expect(codeOf(() => patchify(new Uint8Array(12), 2, 2, { patchSize: 0 }))).toBe("invalid_dimensions");
    expect(codeOf(() => downscaleRgb(new Uint8Array(12), 2, 2, 3, 2))).toBe("invalid_option");
    expect(() => patchify(new Uint8Array(11), 2, 2)).toThrow("rgb has 11 bytes; a 2x2 RGB frame has 12");
  });
});
