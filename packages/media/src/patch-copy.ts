// The patch shuffle as whole-word copies in a JS loop, for frames whose width
// is a whole number of patches and whose patch rows are whole words. A patch
// row of 40 RGB pixels is 120 bytes = 15 float64s = 30 int32s; a loop of word
// copies beats one TypedArray.set call per patch row, whose fixed cost
// dominates at this size. Float64 words halve the loop, but the spec lets an
// engine change a NaN's bit pattern on the way through (eight FF pixel bytes
// read as a float64 are a NaN); `float64CopyIsExact` probes for that once, and
// int32 words are the fallback.

/** Frame and grid geometry in pixels; rows * patchSize may exceed height (bottom rows repeat the last frame row). */
export interface PatchGeometry {
  width: number;
  height: number;
  patchSize: number;
  rows: number;
  cols: number;
}

/** Bytes per word of the copy this geometry allows: 8 (float64), 4 (int32) or 0 (neither; patch rows are not whole words). */
export function copyWordBytes(width: number, patchSize: number): 0 | 4 | 8 {
  if (width % patchSize !== 0) return 0;
  if (patchSize % 8 === 0 && float64CopyIsExact()) return 8;
  return patchSize % 4 === 0 ? 4 : 0;
}

let float64Exact: boolean | undefined;

/**
 * Whether copying float64 words keeps every bit pattern here. Engines that
 * canonicalise NaNs do it wherever a double enters a JS value, in every tier
 * (their value representation depends on it), so copying NaN patterns through
 * the same kernel once settles it.
 */
export function float64CopyIsExact(): boolean {
  if (float64Exact === undefined) {
    const g: PatchGeometry = { width: 8, height: 4, patchSize: 8, rows: 1, cols: 1 };
    const src = new Uint8Array(8 * 4 * 3);
    const nans = [
      [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
      [0x01, 0, 0, 0, 0, 0, 0xf0, 0x7f], // signalling NaN, little-endian
      [0x7f, 0xf0, 0, 0, 0, 0, 0, 0x01], // signalling NaN, big-endian
      [0x01, 0, 0, 0, 0, 0, 0xf8, 0xff],
      [0xff, 0xf8, 0, 0, 0, 0, 0, 0x01],
      [0x34, 0x12, 0, 0, 0, 0, 0xf4, 0x7f],
    ];
    nans.forEach((bytes, i) => src.set(bytes, 8 * i));
    src.fill(0xff, 8 * nans.length);
    const dst = new Uint8Array(src.length);
    copyPatchDoubles(new Float64Array(src.buffer), new Float64Array(dst.buffer), g);
    float64Exact = dst.every((v, i) => v === src[i]);
  }
  return float64Exact;
}

/** As `copyPatchWords`, in float64 words; only where `float64CopyIsExact()`. */
export function copyPatchDoubles(src: Float64Array, dst: Float64Array, g: PatchGeometry): void {
  const { width, height, patchSize, rows, cols } = g;
  const rowWords = (width * 3) / 8;
  const segWords = (patchSize * 3) / 8;
  const patchWords = patchSize * segWords;
  for (let r = 0; r < rows; r++) {
    const bandAt = r * cols * patchWords;
    for (let py = 0; py < patchSize; py++) {
      const si = Math.min(r * patchSize + py, height - 1) * rowWords;
      const di = bandAt + py * segWords;
      if (segWords === 15) copyRow15(src, si, dst, di, cols, patchWords);
      else copyRowDoubles(src, si, dst, di, cols, segWords, patchWords);
    }
  }
}

/** One frame row into `cols` patches; segments of 15 float64s (the default 40-pixel patch) unrolled. */
function copyRow15(s: Float64Array, si: number, d: Float64Array, di: number, cols: number, patchWords: number): void {
  for (let c = 0; c < cols; c++, si += 15, di += patchWords) {
    d[di] = s[si] as number;
    d[di + 1] = s[si + 1] as number;
    d[di + 2] = s[si + 2] as number;
    d[di + 3] = s[si + 3] as number;
    d[di + 4] = s[si + 4] as number;
    d[di + 5] = s[si + 5] as number;
    d[di + 6] = s[si + 6] as number;
    d[di + 7] = s[si + 7] as number;
    d[di + 8] = s[si + 8] as number;
    d[di + 9] = s[si + 9] as number;
    d[di + 10] = s[si + 10] as number;
    d[di + 11] = s[si + 11] as number;
    d[di + 12] = s[si + 12] as number;
    d[di + 13] = s[si + 13] as number;
    d[di + 14] = s[si + 14] as number;
  }
}

function copyRowDoubles(s: Float64Array, si: number, d: Float64Array, di: number, cols: number, segWords: number, patchWords: number): void {
  for (let c = 0; c < cols; c++, si += segWords, di += patchWords) {
    for (let k = 0; k < segWords; k++) d[di + k] = s[si + k] as number;
  }
}

/**
 * Patches of the frame in `src` (width x height RGB, as words) into `dst`
 * (rows x cols patches, each patchSize rows of patchSize pixels, as words).
 */
export function copyPatchWords(src: Int32Array, dst: Int32Array, g: PatchGeometry): void {
  const { width, height, patchSize, rows, cols } = g;
  const rowWords = (width * 3) / 4;
  const segWords = (patchSize * 3) / 4;
  const patchWords = patchSize * segWords;
  for (let r = 0; r < rows; r++) {
    const bandAt = r * cols * patchWords;
    for (let py = 0; py < patchSize; py++) {
      const sy = Math.min(r * patchSize + py, height - 1);
      const si = sy * rowWords;
      const di = bandAt + py * segWords;
      if (segWords === 30) copyRow30(src, si, dst, di, cols, patchWords);
      else copyRow(src, si, dst, di, cols, segWords, patchWords);
    }
  }
}

/** One frame row into `cols` patches; segments of 30 words (the default 40-pixel patch) unrolled. */
function copyRow30(s: Int32Array, si: number, d: Int32Array, di: number, cols: number, patchWords: number): void {
  for (let c = 0; c < cols; c++, si += 30, di += patchWords) {
    d[di] = s[si] as number;
    d[di + 1] = s[si + 1] as number;
    d[di + 2] = s[si + 2] as number;
    d[di + 3] = s[si + 3] as number;
    d[di + 4] = s[si + 4] as number;
    d[di + 5] = s[si + 5] as number;
    d[di + 6] = s[si + 6] as number;
    d[di + 7] = s[si + 7] as number;
    d[di + 8] = s[si + 8] as number;
    d[di + 9] = s[si + 9] as number;
    d[di + 10] = s[si + 10] as number;
    d[di + 11] = s[si + 11] as number;
    d[di + 12] = s[si + 12] as number;
    d[di + 13] = s[si + 13] as number;
    d[di + 14] = s[si + 14] as number;
    d[di + 15] = s[si + 15] as number;
    d[di + 16] = s[si + 16] as number;
    d[di + 17] = s[si + 17] as number;
    d[di + 18] = s[si + 18] as number;
    d[di + 19] = s[si + 19] as number;
    d[di + 20] = s[si + 20] as number;
    d[di + 21] = s[si + 21] as number;
    d[di + 22] = s[si + 22] as number;
    d[di + 23] = s[si + 23] as number;
    d[di + 24] = s[si + 24] as number;
    d[di + 25] = s[si + 25] as number;
    d[di + 26] = s[si + 26] as number;
    d[di + 27] = s[si + 27] as number;
    d[di + 28] = s[si + 28] as number;
    d[di + 29] = s[si + 29] as number;
  }
}

function copyRow(s: Int32Array, si: number, d: Int32Array, di: number, cols: number, segWords: number, patchWords: number): void {
  for (let c = 0; c < cols; c++, si += segWords, di += patchWords) {
    for (let k = 0; k < segWords; k++) d[di + k] = s[si + k] as number;
  }
}
