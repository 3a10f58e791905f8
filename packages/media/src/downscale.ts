// Box-filter (area-average) downscaling of RGB frames before patchify, so a
// large camera frame costs the model fewer patches.

import { MediaError } from "./errors.js";
import { checkDimension, checkRgbFrame } from "./frame.js";

/** Downscale request: the smallest of the three wins; frames are never upscaled. */
export interface DownscaleOptions {
  /** Downscale (never up) so the frame fits this width, keeping the aspect ratio. */
  maxWidth?: number;
  /** Downscale (never up) so the frame fits this height, keeping the aspect ratio. */
  maxHeight?: number;
  /** Downscale factor in (0, 1]. */
  scale?: number;
}

/** Output size for the downscale options (never larger than the input, at least 1x1). */
export function scaledSize(width: number, height: number, options: DownscaleOptions = {}): { width: number; height: number } {
  let s = 1;
  if (options.scale !== undefined) {
    if (!(options.scale > 0 && options.scale <= 1)) {
      throw new MediaError("invalid_option", `scale must be in (0, 1], got ${String(options.scale)}`);
    }
    s = options.scale;
  }
  let capW = width;
  let capH = height;
  if (options.maxWidth !== undefined) {
    checkDimension("maxWidth", options.maxWidth);
    s = Math.min(s, options.maxWidth / width);
    capW = Math.min(capW, options.maxWidth);
  }
  if (options.maxHeight !== undefined) {
    checkDimension("maxHeight", options.maxHeight);
    s = Math.min(s, options.maxHeight / height);
    capH = Math.min(capH, options.maxHeight);
  }
  if (s >= 1) return { width, height };
  return {
    width: Math.min(capW, Math.max(1, Math.round(width * s))),
    height: Math.min(capH, Math.max(1, Math.round(height * s))),
  };
}

/** Per output pixel: first source pixel and the overlap of each source pixel with its footprint. */
function boxWeights(from: number, to: number): { first: Int32Array; count: Int32Array; weights: Float64Array; stride: number } {
  const ratio = from / to;
  const stride = Math.ceil(ratio) + 1;
  const first = new Int32Array(to);
  const count = new Int32Array(to);
  const weights = new Float64Array(to * stride);
  for (let o = 0; o < to; o++) {
    // Integer arithmetic for the footprint [o * from / to, (o + 1) * from / to) keeps edges exact.
    const lo = (o * from) / to;
    const hi = ((o + 1) * from) / to;
    const i0 = Math.floor(lo);
    const i1 = Math.min(from, Math.ceil(hi));
    first[o] = i0;
    count[o] = i1 - i0;
    for (let i = i0; i < i1; i++) {
      weights[o * stride + (i - i0)] = (Math.min(hi, i + 1) - Math.max(lo, i)) / ratio;
    }
  }
  return { first, count, weights, stride };
}

/**
 * Box-filter (area-average) downscale of an RGB frame: each output pixel is
 * the mean of the source area it covers, fractional pixels weighted by
 * overlap, rounded half up.
 */
export function downscaleRgb(rgb: Uint8Array, width: number, height: number, outWidth: number, outHeight: number): Uint8Array {
  checkRgbFrame(rgb, width, height);
  checkDimension("outWidth", outWidth);
  checkDimension("outHeight", outHeight);
  if (outWidth > width || outHeight > height) {
    throw new MediaError("invalid_option", `cannot downscale ${width}x${height} to a larger ${outWidth}x${outHeight}`);
  }
  const h = boxWeights(width, outWidth);
  const v = boxWeights(height, outHeight);
  const rows = new Float64Array(height * outWidth * 3);
  for (let y = 0; y < height; y++) {
    for (let o = 0; o < outWidth; o++) {
      let r = 0;
      let g = 0;
      let b = 0;
      const i0 = h.first[o] as number;
      for (let t = 0; t < (h.count[o] as number); t++) {
        const w = h.weights[o * h.stride + t] as number;
        const p = (y * width + i0 + t) * 3;
        r += w * (rgb[p] as number);
        g += w * (rgb[p + 1] as number);
        b += w * (rgb[p + 2] as number);
      }
      const q = (y * outWidth + o) * 3;
      rows[q] = r;
      rows[q + 1] = g;
      rows[q + 2] = b;
    }
  }
  const out = new Uint8Array(outWidth * outHeight * 3);
  for (let o = 0; o < outHeight; o++) {
    const j0 = v.first[o] as number;
    for (let x = 0; x < outWidth * 3; x++) {
      let acc = 0;
      for (let t = 0; t < (v.count[o] as number); t++) {
        acc += (v.weights[o * v.stride + t] as number) * (rows[(j0 + t) * outWidth * 3 + x] as number);
      }
      // The tiny bias keeps exact .5 averages rounding up despite float error in the weights.
      out[o * outWidth * 3 + x] = Math.min(255, Math.floor(acc + 0.5 + 1e-9));
    }
  }
  return out;
}

