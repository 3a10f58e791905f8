// Cuts an RGB frame into the square patches of proto `VideoPatches`: a
// row-major grid of patches, each patch row-major pixels of interleaved RGB.
// A frame whose sides are not multiples of the patch size is padded on the
// right and bottom by repeating the last pixel of each row / column (pixel
// coordinates clamp to the frame). An optional box-filter downscale runs first.

import { PATCH_SIZE } from "./constants.js";
import { type DownscaleOptions, downscaleRgb, scaledSize } from "./downscale.js";
import { MediaError } from "./errors.js";
import { checkDimension, checkRgbFrame } from "./frame.js";
import { copyPatchDoubles, copyPatchWords, copyWordBytes, type PatchGeometry } from "./patch-copy.js";

/**
 * Most patch bytes one frame may make: the patches of an 8K UHD frame
 * (7680x4320, 108 x 192 patches of 40 px). Padding counts: every edge patch is
 * padded out to the full patch size, so a frame a few pixels wide or high
 * makes far more patch bytes than it has pixels (1 x 2,073,600 px, 6.2 MB of
 * RGB, made 249 MB of patches and blocked for seconds).
 */
export const MAX_PATCH_BYTES = 7680 * 4320 * 3;

/**
 * Plans `patchify` keeps are for video at a steady frame size: patches at most
 * a 4K UHD frame's, and at most 4x the frame's own bytes. A frame that is
 * mostly padding has a segment plan of one view per 1-pixel run (~200 bytes of
 * heap per 3 bytes of frame); it gets a one-off Patchifier instead.
 */
const MAX_CACHED_PATCH_BYTES = 3840 * 2160 * 3;
const MAX_CACHED_PADDING_RATIO = 4;

/** Bytes of the patches of a width x height frame, edge padding included: rows * cols * patchSize^2 * 3. */
export function patchBytes(width: number, height: number, patchSize = PATCH_SIZE): number {
  return Math.ceil(height / patchSize) * Math.ceil(width / patchSize) * patchSize * patchSize * 3;
}

export interface PatchifyOptions extends DownscaleOptions {
  /** Patch side in pixels. Default PATCH_SIZE (40), what the reference model takes. */
  patchSize?: number;
}

/** Patches of one frame; fields match proto `VideoPatches` (patch_size_px, rows, cols, rgb). */
export interface VideoPatchGrid {
  rows: number;
  cols: number;
  patchSize: number;
  /** Frame size after downscaling, before padding. */
  width: number;
  height: number;
  /** rows x cols patches, row-major; each patchSize x patchSize pixels row-major, 3 bytes (RGB) per pixel. */
  patches: Uint8Array;
}

/**
 * Patchify for a fixed frame size, for video at frame rate. When the width is
 * a whole number of patches and patch rows are whole words (the default
 * 40-pixel patch on 640x480, 1280x720, ...), a frame is copied word by word
 * (see patch-copy.ts) straight from `rgb`, through an aligned staging copy
 * only if `rgb` is not word-aligned. Otherwise the copy plan (a view per patch-row segment of a
 * staging frame, and its output offset) is built once and a frame costs one
 * staging copy plus one native copy per segment. Without `out`, `patchify`
 * writes into this Patchifier's own buffer, which the next call overwrites;
 * copy or encode it before then.
 */
export class Patchifier {
  readonly width: number;
  readonly height: number;
  readonly patchSize: number;
  readonly rows: number;
  readonly cols: number;
  /** Patch bytes of one frame. */
  readonly byteLength: number;
  /** Own output buffer, allocated on first use: `patchify()` always passes `out`, so its one-off Patchifiers never need it. */
  private ownOutput: Uint8Array | undefined;
  /** Bytes per word of the copy (8 or 4), 0 for the segment plan. */
  private readonly wordBytes: 0 | 4 | 8;
  private staging: Uint8Array | undefined;
  private plan: SegmentPlan | undefined;

  constructor(width: number, height: number, patchSize = PATCH_SIZE) {
    checkDimension("width", width);
    checkDimension("height", height);
    checkDimension("patchSize", patchSize);
    const bytes = patchBytes(width, height, patchSize);
    if (bytes > MAX_PATCH_BYTES) {
      throw new MediaError(
        "too_large",
        `a ${width}x${height} frame makes ${bytes} bytes of ${patchSize}x${patchSize} patches (edge patches padded), over the ${MAX_PATCH_BYTES}-byte limit; downscale or crop it first`,
      );
    }
    this.width = width;
    this.height = height;
    this.patchSize = patchSize;
    this.rows = Math.ceil(height / patchSize);
    this.cols = Math.ceil(width / patchSize);
    this.byteLength = bytes;
    this.wordBytes = copyWordBytes(width, patchSize);
  }

  private get output(): Uint8Array {
    this.ownOutput ??= new Uint8Array(this.byteLength);
    return this.ownOutput;
  }

  /**
   * Patches of one width x height RGB frame, written into `out` (at least
   * `byteLength` bytes) or, without it, into this Patchifier's buffer (valid
   * until the next call). Returns the bytes written.
   */
  patchify(rgb: Uint8Array, out?: Uint8Array): Uint8Array {
    checkRgbFrame(rgb, this.width, this.height);
    const length = this.byteLength;
    const output = out === undefined ? this.output : out;
    if (output.length < length) {
      throw new MediaError("invalid_length", `out has ${output.length} bytes; the patches need ${length}`);
    }
    const unit = this.wordBytes;
    if (unit !== 0) {
      // Read from a staged copy when `rgb` is not word-aligned or shares memory with the output (patchify in place).
      const direct = rgb.byteOffset % unit === 0 && !overlaps(rgb, output);
      const src = direct ? rgb : this.stage(rgb);
      const aligned = output.byteOffset % unit === 0;
      const dst = aligned ? output : this.output;
      if (unit === 8) {
        copyPatchDoubles(new Float64Array(src.buffer, src.byteOffset, src.length / 8), new Float64Array(dst.buffer, dst.byteOffset, length / 8), this);
      } else {
        copyPatchWords(new Int32Array(src.buffer, src.byteOffset, src.length / 4), new Int32Array(dst.buffer, dst.byteOffset, length / 4), this);
      }
      if (!aligned) output.set(this.output);
    } else {
      this.plan ??= new SegmentPlan(this);
      this.plan.copy(rgb, output);
    }
    return output.length === length ? output : output.subarray(0, length);
  }

  /** `rgb` copied into a buffer of this Patchifier (8-byte aligned, as every fresh ArrayBuffer is). */
  private stage(rgb: Uint8Array): Uint8Array {
    this.staging ??= new Uint8Array(rgb.length);
    this.staging.set(rgb);
    return this.staging;
  }
}

function overlaps(a: Uint8Array, b: Uint8Array): boolean {
  return a.buffer === b.buffer && a.byteOffset < b.byteOffset + b.length && b.byteOffset < a.byteOffset + a.length;
}

/** Copy plan for any geometry: a view per patch-row segment of the staging frame, its output offset, and the right-edge padding runs. */
class SegmentPlan {
  /** The frame the segment views look at. */
  private readonly staging: Uint8Array;
  private readonly from: Uint8Array[] = [];
  private readonly toOffset: Int32Array;
  /** Right-edge padding runs: output offset, pixel count, staging offset of the pixel to repeat. */
  private readonly padAt: Int32Array;
  private readonly padCount: Int32Array;
  private readonly padSource: Int32Array;

  constructor(g: PatchGeometry) {
    const { width, height, patchSize, rows, cols } = g;
    const staging = new Uint8Array(width * height * 3);
    this.staging = staging;
    const toOffset: number[] = [];
    const padAt: number[] = [];
    const padCount: number[] = [];
    const padSource: number[] = [];
    const rowBytes = patchSize * 3;
    let dst = 0;
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        const x0 = c * patchSize;
        const inside = Math.min(patchSize, width - x0);
        for (let py = 0; py < patchSize; py++) {
          const sy = Math.min(r * patchSize + py, height - 1);
          const src = (sy * width + x0) * 3;
          this.from.push(staging.subarray(src, src + inside * 3));
          toOffset.push(dst);
          if (inside < patchSize) {
            padAt.push(dst + inside * 3);
            padCount.push(patchSize - inside);
            padSource.push(src + (inside - 1) * 3);
          }
          dst += rowBytes;
        }
      }
    }
    this.toOffset = Int32Array.from(toOffset);
    this.padAt = Int32Array.from(padAt);
    this.padCount = Int32Array.from(padCount);
    this.padSource = Int32Array.from(padSource);
  }

  /** `rgb` into `output` (at least the patches' length). */
  copy(rgb: Uint8Array, output: Uint8Array): void {
    const { staging, from, toOffset, padAt, padCount, padSource } = this;
    staging.set(rgb);
    for (let i = 0; i < from.length; i++) output.set(from[i] as Uint8Array, toOffset[i] as number);
    for (let i = 0; i < padAt.length; i++) {
      const s = padSource[i] as number;
      const red = staging[s] as number;
      const green = staging[s + 1] as number;
      const blue = staging[s + 2] as number;
      for (let p = padAt[i] as number, end = p + 3 * (padCount[i] as number); p < end; p += 3) {
        output[p] = red;
        output[p + 1] = green;
        output[p + 2] = blue;
      }
    }
  }
}

type UnsafeAlloc = (bytes: number) => Uint8Array;
const allocUnsafeSlow = (globalThis as { Buffer?: { allocUnsafeSlow?: UnsafeAlloc } }).Buffer?.allocUnsafeSlow;

/**
 * A fresh Uint8Array that owns its whole ArrayBuffer, for output that gets
 * every byte overwritten: on Node without the zero fill (calloc'ing and
 * page-faulting ~1 MB per frame was most of `patchify`'s cost), elsewhere a
 * plain zeroed one.
 */
function uninitialised(bytes: number): Uint8Array {
  if (allocUnsafeSlow === undefined) return new Uint8Array(bytes);
  const b = allocUnsafeSlow(bytes);
  return new Uint8Array(b.buffer, b.byteOffset, bytes);
}

// The last few plans, so `patchify` at a steady frame size reuses its plan.
const plans: Patchifier[] = [];
const MAX_PLANS = 4;

function planFor(width: number, height: number, patchSize: number): Patchifier {
  const found = plans.findIndex((p) => p.width === width && p.height === height && p.patchSize === patchSize);
  if (found >= 0) {
    const plan = plans[found] as Patchifier;
    if (found > 0) plans.unshift(...plans.splice(found, 1));
    return plan;
  }
  const plan = new Patchifier(width, height, patchSize);
  if (plan.byteLength <= MAX_CACHED_PATCH_BYTES && plan.byteLength <= MAX_CACHED_PADDING_RATIO * width * height * 3) {
    plans.unshift(plan);
    if (plans.length > MAX_PLANS) plans.pop();
  }
  return plan;
}

/** Frame sizes `patchify` holds plans for, most recent first (for tests). */
export function cachedPlanSizes(): Array<{ width: number; height: number; patchSize: number }> {
  return plans.map(({ width, height, patchSize }) => ({ width, height, patchSize }));
}

/**
 * Cuts an RGB frame (width x height x 3 bytes, row-major) into square patches
 * (see the module header for padding), after an optional downscale. The
 * result owns its bytes; for a zero-copy loop use a `Patchifier`.
 */
export function patchify(rgb: Uint8Array, width: number, height: number, options: PatchifyOptions = {}): VideoPatchGrid {
  checkRgbFrame(rgb, width, height);
  const patchSize = options.patchSize ?? PATCH_SIZE;
  checkDimension("patchSize", patchSize);
  const size = scaledSize(width, height, options);
  const frame = size.width === width && size.height === height ? rgb : downscaleRgb(rgb, width, height, size.width, size.height);
  const plan = planFor(size.width, size.height, patchSize);
  return {
    rows: plan.rows,
    cols: plan.cols,
    patchSize,
    width: size.width,
    height: size.height,
    patches: plan.patchify(frame, uninitialised(plan.byteLength)),
  };
}
