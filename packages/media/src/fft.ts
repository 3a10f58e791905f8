// Real-input FFT for the dMel encoder: a length-n real signal is packed into an
// n/2-point complex FFT (even samples real, odd samples imaginary) and split
// afterwards, so each frame costs half a complex FFT. Tables are built once per
// size; `forward` allocates nothing.

import { MediaError } from "./errors.js";
import { digitReversal, firstPass, radix8Pass } from "./fft-passes.js";

/** Forward real FFT of one power-of-two size; allocate once, call per frame (not reentrant: one scratch buffer). */
export class RealFft {
  /** Transform length (a power of two, at least 4). */
  readonly size: number;
  private readonly half: number;
  private readonly firstRadix: number;
  /** Position p of the first pass reads z[order[p]] (decimation in time: inputs in mixed-radix digit-reversed order). */
  private readonly order: Uint32Array;
  /** Twiddles of each radix-8 pass, see `radix8Pass`. */
  private readonly passCos: Float64Array[] = [];
  private readonly passSin: Float64Array[] = [];
  /** cos/sin(2*pi*k/size) for the real split, k <= half. */
  private readonly splitCos: Float64Array;
  private readonly splitSin: Float64Array;
  private readonly zr: Float64Array;
  private readonly zi: Float64Array;
  /** The (windowed) input, zero from `filled` on. */
  private readonly scratch: Float64Array;
  private filled = 0;
  /** The window of the scratch path (products with 1 are exact). */
  private readonly ones: Float64Array;

  constructor(size: number) {
    if (!Number.isInteger(size) || size < 4 || (size & (size - 1)) !== 0) {
      throw new MediaError("invalid_option", `FFT size must be a power of two >= 4, got ${String(size)}`);
    }
    this.size = size;
    const half = size / 2;
    this.half = half;
    // half = firstRadix * 8^passes: a twiddle-free radix-2/4/8 pass, then radix-8 passes.
    const log = Math.log2(half);
    this.firstRadix = log % 3 === 0 ? 8 : 2 ** (log % 3);
    const radices: number[] = [this.firstRadix];
    for (let span = this.firstRadix; span < half; span *= 8) {
      radices.push(8);
      // Each twiddle comes straight from cos/sin rather than a recurrence, so rounding error does not grow along the table.
      const cos = new Float64Array(7 * span);
      const sin = new Float64Array(7 * span);
      for (let j = 0; j < span; j++) {
        for (let q = 1; q < 8; q++) {
          cos[7 * j + q - 1] = Math.cos((2 * Math.PI * j * q) / (8 * span));
          sin[7 * j + q - 1] = Math.sin((2 * Math.PI * j * q) / (8 * span));
        }
      }
      this.passCos.push(cos);
      this.passSin.push(sin);
    }
    this.order = digitReversal(half, radices.reverse());
    this.splitCos = new Float64Array(half + 1);
    this.splitSin = new Float64Array(half + 1);
    for (let k = 0; k <= half; k++) {
      this.splitCos[k] = Math.cos((2 * Math.PI * k) / size);
      this.splitSin[k] = Math.sin((2 * Math.PI * k) / size);
    }
    this.zr = new Float64Array(half);
    this.zi = new Float64Array(half);
    this.scratch = new Float64Array(size);
    this.ones = new Float64Array(size).fill(1);
  }

  /**
   * Forward DFT X[k] = sum_n x[n] e^{-2 pi i k n / size} for k = 0..size/2.
   * `input` has `size` samples; `re` and `im` have at least size/2 + 1 slots.
   */
  forward(input: Float64Array, re: Float64Array, im: Float64Array): void {
    this.transform(input, null, input.length);
    const { half, splitCos, splitSin } = this;
    for (let k = 0; k <= half; k++) {
      this.splitBin(k, splitCos[k] as number, splitSin[k] as number);
      re[k] = this.binRe;
      im[k] = this.binIm;
    }
  }

  /**
   * |X[k]| for k in [fromBin, toBin) of the signal input[n] * window[n],
   * n < window.length, zero-padded to `size` — windowing, padding, FFT and
   * magnitude in one pass with no intermediate arrays.
   */
  magnitude(input: Float64Array, window: Float64Array, out: Float64Array, fromBin = 0, toBin = this.half + 1): void {
    this.transform(input, window, window.length);
    const { half, zr, zi, splitCos, splitSin } = this;
    // splitBin inlined for 0 < k < half (the hot loop); the two end bins go through it. Bins k and half - k
    // read the same two values of z with twiddles (c, s) and (-c, s), so each step yields both.
    const lo = Math.max(fromBin, 1);
    const hi = Math.min(toBin, half);
    for (let k = 1, kk = half - 1; k <= kk; k++, kk--) {
      const wantK = k >= lo && k < hi;
      const wantKk = kk >= lo && kk < hi;
      if (!wantK && !wantKk) continue;
      // splitBin's terms times 2 (exact: scaling by a power of two commutes with rounding), halved once at the end.
      const ar = zr[k] as number;
      const ai = zi[k] as number;
      const br = zr[kk] as number;
      const bi = zi[kk] as number;
      const er = ar + br;
      const ei = ai - bi;
      const or = ai + bi;
      const oi = br - ar;
      const c = splitCos[k] as number;
      const s = splitSin[k] as number;
      const p = c * or + s * oi;
      const q = c * oi - s * or;
      if (wantK) out[k] = 0.5 * Math.sqrt((er + p) * (er + p) + (ei + q) * (ei + q));
      if (wantKk) out[kk] = 0.5 * Math.sqrt((er - p) * (er - p) + (q - ei) * (q - ei));
    }
    if (fromBin === 0) this.edgeMagnitude(0, out);
    if (toBin > half) this.edgeMagnitude(half, out);
  }

  private edgeMagnitude(k: number, out: Float64Array): void {
    this.splitBin(k, this.splitCos[k] as number, this.splitSin[k] as number);
    out[k] = Math.sqrt(this.binRe * this.binRe + this.binIm * this.binIm);
  }

  // Result slots of splitBin (fields, not a returned object, so the hot loop allocates nothing).
  private binRe = 0;
  private binIm = 0;

  /** X[k] from the half-size transform: E[k] + e^{-2 pi i k / size} O[k], E/O the spectra of even/odd samples. */
  private splitBin(k: number, c: number, s: number): void {
    const { half, zr, zi } = this;
    const p = k === half ? 0 : k;
    const q = k === 0 ? 0 : half - k;
    const ar = zr[p] as number;
    const ai = zi[p] as number;
    const br = zr[q] as number;
    const bi = -(zi[q] as number);
    const er = 0.5 * (ar + br);
    const ei = 0.5 * (ai + bi);
    const or = 0.5 * (ai - bi);
    const oi = -0.5 * (ar - br);
    this.binRe = er + c * or + s * oi;
    this.binIm = ei + c * oi - s * or;
  }

  /** The half-size complex FFT of z[m] = x[2m] + i x[2m+1] into zr/zi, x = input (times window), zero from `length` on. */
  private transform(input: Float64Array, window: Float64Array | null, length: number): void {
    const { scratch, size } = this;
    if (window !== null && window.length >= size && input.length >= size) {
      // A window as long as the transform: the first pass windows as it loads, with no copy.
      firstPass(this.zr, this.zi, this.order, this.firstRadix, input, window);
    } else {
      const used = Math.min(length, size);
      if (window === null) for (let n = 0; n < used; n++) scratch[n] = input[n] as number;
      else for (let n = 0; n < used; n++) scratch[n] = (input[n] as number) * (window[n] as number);
      if (used < this.filled) scratch.fill(0, used, this.filled);
      this.filled = used;
      firstPass(this.zr, this.zi, this.order, this.firstRadix, scratch, this.ones);
    }
    for (let span = this.firstRadix, p = 0; span < this.half; span *= 8, p++) {
      radix8Pass(this.zr, this.zi, span, this.passCos[p] as Float64Array, this.passSin[p] as Float64Array);
    }
  }
}

