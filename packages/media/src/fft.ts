// Real-input FFT for the dMel encoder: a length-n real signal is packed into an
// n/2-point complex FFT (even samples real, odd samples imaginary) and split
// afterwards, so each frame costs half a complex FFT. Tables are built once per
// size; `forward` allocates nothing.

import { MediaError } from "./errors.js";

export class RealFft {
  /** Transform length (a power of two, at least 4). */
  readonly size: number;
  private readonly half: number;
  private readonly bitReverse: Uint32Array;
  /** cos/sin(2*pi*k/half) for the complex stages, k < half/2. */
  private readonly stageCos: Float64Array;
  private readonly stageSin: Float64Array;
  /** cos/sin(2*pi*k/size) for the real split, k <= half. */
  private readonly splitCos: Float64Array;
  private readonly splitSin: Float64Array;
  private readonly zr: Float64Array;
  private readonly zi: Float64Array;

  constructor(size: number) {
    if (!Number.isInteger(size) || size < 4 || (size & (size - 1)) !== 0) {
      throw new MediaError("invalid_option", `FFT size must be a power of two >= 4, got ${String(size)}`);
    }
    this.size = size;
    const half = size / 2;
    this.half = half;
    const bits = Math.log2(half);
    this.bitReverse = new Uint32Array(half);
    for (let i = 0; i < half; i++) {
      let r = 0;
      for (let b = 0; b < bits; b++) r |= ((i >> b) & 1) << (bits - 1 - b);
      this.bitReverse[i] = r;
    }
    // Each twiddle comes straight from cos/sin rather than a recurrence, so
    // rounding error does not grow along the table.
    this.stageCos = new Float64Array(half / 2);
    this.stageSin = new Float64Array(half / 2);
    for (let k = 0; k < half / 2; k++) {
      this.stageCos[k] = Math.cos((2 * Math.PI * k) / half);
      this.stageSin[k] = Math.sin((2 * Math.PI * k) / half);
    }
    this.splitCos = new Float64Array(half + 1);
    this.splitSin = new Float64Array(half + 1);
    for (let k = 0; k <= half; k++) {
      this.splitCos[k] = Math.cos((2 * Math.PI * k) / size);
      this.splitSin[k] = Math.sin((2 * Math.PI * k) / size);
    }
    this.zr = new Float64Array(half);
    this.zi = new Float64Array(half);
  }

  /**
   * Forward DFT X[k] = sum_n x[n] e^{-2 pi i k n / size} for k = 0..size/2.
   * `input` has `size` samples; `re` and `im` have at least size/2 + 1 slots.
   */
  forward(input: Float64Array, re: Float64Array, im: Float64Array): void {
    const { half, zr, zi, bitReverse, stageCos, stageSin } = this;
    for (let m = 0; m < half; m++) {
      const j = bitReverse[m] as number;
      zr[j] = input[2 * m] as number;
      zi[j] = input[2 * m + 1] as number;
    }
    for (let span = 1; span < half; span *= 2) {
      const step = half / (2 * span);
      for (let start = 0; start < half; start += 2 * span) {
        for (let j = 0; j < span; j++) {
          const wr = stageCos[j * step] as number;
          const wi = -(stageSin[j * step] as number);
          const a = start + j;
          const b = a + span;
          const br = zr[b] as number;
          const bi = zi[b] as number;
          const tr = br * wr - bi * wi;
          const ti = br * wi + bi * wr;
          const ar = zr[a] as number;
          const ai = zi[a] as number;
          zr[b] = ar - tr;
          zi[b] = ai - ti;
          zr[a] = ar + tr;
          zi[a] = ai + ti;
        }
      }
    }
    // Split Z into the spectra of the even (E) and odd (O) samples, then
    // X[k] = E[k] + e^{-2 pi i k / size} O[k].
    const { splitCos, splitSin } = this;
    for (let k = 0; k <= half; k++) {
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
      const c = splitCos[k] as number;
      const s = splitSin[k] as number;
      re[k] = er + c * or + s * oi;
      im[k] = ei + c * oi - s * or;
    }
  }
}
