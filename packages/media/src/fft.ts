// Real-input FFT for the dMel encoder: a length-n real signal is packed into an
// n/2-point complex FFT (even samples real, odd samples imaginary) and split
// afterwards, so each frame costs half a complex FFT. Tables are built once per
// size; `forward` allocates nothing.

import { MediaError } from "./errors.js";

/** Forward real FFT of one power-of-two size; allocate once, call per frame (not reentrant: one scratch buffer). */
export class RealFft {
  /** Transform length (a power of two, at least 4). */
  readonly size: number;
  private readonly half: number;
  private readonly bitReverse: Uint32Array;
  /** Twiddles of every complex stage laid out contiguously: stage `span` starts at offset span - 1, cos/sin(pi*j/span). */
  private readonly stageCos: Float64Array;
  private readonly stageSin: Float64Array;
  /** cos/sin(2*pi*k/size) for the real split, k <= half. */
  private readonly splitCos: Float64Array;
  private readonly splitSin: Float64Array;
  private readonly zr: Float64Array;
  private readonly zi: Float64Array;
  /** The (windowed) input, zero from `filled` on. */
  private readonly scratch: Float64Array;
  private filled = 0;

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
    this.stageCos = new Float64Array(Math.max(half - 1, 1));
    this.stageSin = new Float64Array(Math.max(half - 1, 1));
    for (let span = 1; span < half; span *= 2) {
      for (let j = 0; j < span; j++) {
        // Same angle as 2*pi*(j*half/(2*span))/half, computed from the table index so every size shares one formula.
        const k = (j * half) / (2 * span);
        this.stageCos[span - 1 + j] = Math.cos((2 * Math.PI * k) / half);
        this.stageSin[span - 1 + j] = Math.sin((2 * Math.PI * k) / half);
      }
    }
    this.splitCos = new Float64Array(half + 1);
    this.splitSin = new Float64Array(half + 1);
    for (let k = 0; k <= half; k++) {
      this.splitCos[k] = Math.cos((2 * Math.PI * k) / size);
      this.splitSin[k] = Math.sin((2 * Math.PI * k) / size);
    }
    this.zr = new Float64Array(half);
    this.zi = new Float64Array(half);
    this.scratch = new Float64Array(size);
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
    // splitBin inlined for 0 < k < half (the hot loop); the two end bins go through it.
    const lo = Math.max(fromBin, 1);
    const hi = Math.min(toBin, half);
    for (let k = lo; k < hi; k++) {
      const ar = zr[k] as number;
      const ai = zi[k] as number;
      const br = zr[half - k] as number;
      const bi = -(zi[half - k] as number);
      const er = 0.5 * (ar + br);
      const ei = 0.5 * (ai + bi);
      const or = 0.5 * (ai - bi);
      const oi = -0.5 * (ar - br);
      const c = splitCos[k] as number;
      const s = splitSin[k] as number;
      const r = er + c * or + s * oi;
      const i = ei + c * oi - s * or;
      out[k] = Math.sqrt(r * r + i * i);
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
    const { half, zr, zi, bitReverse, stageCos, stageSin, scratch } = this;
    const used = Math.min(length, this.size);
    if (window === null) for (let n = 0; n < used; n++) scratch[n] = input[n] as number;
    else for (let n = 0; n < used; n++) scratch[n] = (input[n] as number) * (window[n] as number);
    if (used < this.filled) scratch.fill(0, used, this.filled);
    this.filled = used;
    let span: number;
    if (half >= 4) {
      // Bit-reversed load fused with the first two stages (a radix-4 butterfly
      // whose twiddles are 1 and -i): slots a..a+3 hold z[m], z[m + half/2],
      // z[m + half/4], z[m + 3 half/4] for m = bitReverse[a].
      const q1 = half; // sample offset of z[m + half/2]: 2 * half/2
      const q2 = half / 2;
      const q3 = half + half / 2;
      for (let a = 0; a < half; a += 4) {
        const n = 2 * (bitReverse[a] as number);
        const x0r = scratch[n] as number;
        const x0i = scratch[n + 1] as number;
        const x1r = scratch[n + q1] as number;
        const x1i = scratch[n + q1 + 1] as number;
        const x2r = scratch[n + q2] as number;
        const x2i = scratch[n + q2 + 1] as number;
        const x3r = scratch[n + q3] as number;
        const x3i = scratch[n + q3 + 1] as number;
        const b0r = x0r + x1r;
        const b0i = x0i + x1i;
        const b1r = x0r - x1r;
        const b1i = x0i - x1i;
        const b2r = x2r + x3r;
        const b2i = x2i + x3i;
        const b3r = x2r - x3r;
        const b3i = x2i - x3i;
        zr[a] = b0r + b2r;
        zi[a] = b0i + b2i;
        zr[a + 2] = b0r - b2r;
        zi[a + 2] = b0i - b2i;
        // b3 * -i = b3i - i b3r
        zr[a + 1] = b1r + b3i;
        zi[a + 1] = b1i - b3r;
        zr[a + 3] = b1r - b3i;
        zi[a + 3] = b1i + b3r;
      }
      span = 4;
    } else {
      for (let m = 0; m < half; m++) {
        const j = bitReverse[m] as number;
        zr[j] = scratch[2 * m] as number;
        zi[j] = scratch[2 * m + 1] as number;
      }
      for (let a = 0; a < half; a += 2) {
        const ar = zr[a] as number;
        const ai = zi[a] as number;
        const br = zr[a + 1] as number;
        const bi = zi[a + 1] as number;
        zr[a] = ar + br;
        zi[a] = ai + bi;
        zr[a + 1] = ar - br;
        zi[a + 1] = ai - bi;
      }
      span = 2;
    }
    // Remaining stages two at a time (radix-2^2): stage `span` and stage
    // `2 span` on four values per load, halving the passes over memory.
    for (; 4 * span <= half; span *= 4) {
      const base1 = span - 1;
      const base2 = 2 * span - 1;
      for (let j = 0; j < span; j++) {
        const w1r = stageCos[base1 + j] as number;
        const w1i = -(stageSin[base1 + j] as number);
        const w2r = stageCos[base2 + j] as number;
        const w2i = -(stageSin[base2 + j] as number);
        for (let a0 = j; a0 < half; a0 += 4 * span) {
          const a1 = a0 + span;
          const a2 = a1 + span;
          const a3 = a2 + span;
          // Stage span: (a0, a1) and (a2, a3) with twiddle w1.
          let xr = zr[a1] as number;
          let xi = zi[a1] as number;
          let tr = xr * w1r - xi * w1i;
          let ti = xr * w1i + xi * w1r;
          const p0r = (zr[a0] as number) + tr;
          const p0i = (zi[a0] as number) + ti;
          const p1r = (zr[a0] as number) - tr;
          const p1i = (zi[a0] as number) - ti;
          xr = zr[a3] as number;
          xi = zi[a3] as number;
          tr = xr * w1r - xi * w1i;
          ti = xr * w1i + xi * w1r;
          const p2r = (zr[a2] as number) + tr;
          const p2i = (zi[a2] as number) + ti;
          const p3r = (zr[a2] as number) - tr;
          const p3i = (zi[a2] as number) - ti;
          // Stage 2 span: (a0, a2) with w2, (a1, a3) with w2 * -i.
          tr = p2r * w2r - p2i * w2i;
          ti = p2r * w2i + p2i * w2r;
          zr[a0] = p0r + tr;
          zi[a0] = p0i + ti;
          zr[a2] = p0r - tr;
          zi[a2] = p0i - ti;
          const ur = p3r * w2r - p3i * w2i;
          const ui = p3r * w2i + p3i * w2r;
          // (ur + i ui) * -i = ui - i ur
          zr[a1] = p1r + ui;
          zi[a1] = p1i - ur;
          zr[a3] = p1r - ui;
          zi[a3] = p1i + ur;
        }
      }
    }
    // A last single stage when the stage count after the first is odd.
    for (; span < half; span *= 2) {
      const base = span - 1;
      for (let j = 0; j < span; j++) {
        const wr = stageCos[base + j] as number;
        const wi = -(stageSin[base + j] as number);
        for (let a = j; a < half; a += 2 * span) {
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
  }
}
