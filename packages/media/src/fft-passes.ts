// The complex passes of RealFft's half-size transform: decimation in time,
// a twiddle-free radix-2/4/8 first pass over inputs in digit-reversed order,
// then radix-8 passes. Each radix-8 butterfly is an 8-point DFT split into two
// 4-point DFTs (even and odd inputs); eight inputs and outputs per load and
// store halve the passes over memory compared with radix-2.

const SQRT_HALF = Math.SQRT1_2;

/** The twiddle-free first pass (radix 2, 4 or 8), loading z in digit-reversed order from x[n] = src[n] * win[n], n < size. */
export function firstPass(zr: Float64Array, zi: Float64Array, order: Uint32Array, firstRadix: number, src: Float64Array, win: Float64Array): void {
  const half = zr.length;
  if (firstRadix === 2) {
    for (let a = 0; a < half; a += 2) {
      const n0 = 2 * (order[a] as number);
      const n1 = 2 * (order[a + 1] as number);
      const x0r = (src[n0] as number) * (win[n0] as number);
      const x0i = (src[n0 + 1] as number) * (win[n0 + 1] as number);
      const x1r = (src[n1] as number) * (win[n1] as number);
      const x1i = (src[n1 + 1] as number) * (win[n1 + 1] as number);
      zr[a] = x0r + x1r;
      zi[a] = x0i + x1i;
      zr[a + 1] = x0r - x1r;
      zi[a + 1] = x0i - x1i;
    }
  } else if (firstRadix === 4) {
    for (let a = 0; a < half; a += 4) {
      const n0 = 2 * (order[a] as number);
      const n1 = 2 * (order[a + 1] as number);
      const n2 = 2 * (order[a + 2] as number);
      const n3 = 2 * (order[a + 3] as number);
      const b0r = (src[n0] as number) * (win[n0] as number) + (src[n2] as number) * (win[n2] as number);
      const b0i = (src[n0 + 1] as number) * (win[n0 + 1] as number) + (src[n2 + 1] as number) * (win[n2 + 1] as number);
      const b1r = (src[n0] as number) * (win[n0] as number) - (src[n2] as number) * (win[n2] as number);
      const b1i = (src[n0 + 1] as number) * (win[n0 + 1] as number) - (src[n2 + 1] as number) * (win[n2 + 1] as number);
      const b2r = (src[n1] as number) * (win[n1] as number) + (src[n3] as number) * (win[n3] as number);
      const b2i = (src[n1 + 1] as number) * (win[n1 + 1] as number) + (src[n3 + 1] as number) * (win[n3 + 1] as number);
      const b3r = (src[n1] as number) * (win[n1] as number) - (src[n3] as number) * (win[n3] as number);
      const b3i = (src[n1 + 1] as number) * (win[n1 + 1] as number) - (src[n3 + 1] as number) * (win[n3 + 1] as number);
      zr[a] = b0r + b2r;
      zi[a] = b0i + b2i;
      zr[a + 2] = b0r - b2r;
      zi[a + 2] = b0i - b2i;
      // X1 = b1 - i b3, X3 = b1 + i b3
      zr[a + 1] = b1r + b3i;
      zi[a + 1] = b1i - b3r;
      zr[a + 3] = b1r - b3i;
      zi[a + 3] = b1i + b3r;
    }
  } else {
    for (let a = 0; a < half; a += 8) {
      const n0 = 2 * (order[a] as number);
      const n1 = 2 * (order[a + 1] as number);
      const n2 = 2 * (order[a + 2] as number);
      const n3 = 2 * (order[a + 3] as number);
      const n4 = 2 * (order[a + 4] as number);
      const n5 = 2 * (order[a + 5] as number);
      const n6 = 2 * (order[a + 6] as number);
      const n7 = 2 * (order[a + 7] as number);
      const a0r = (src[n0] as number) * (win[n0] as number);
      const a0i = (src[n0 + 1] as number) * (win[n0 + 1] as number);
      const a1r = (src[n1] as number) * (win[n1] as number);
      const a1i = (src[n1 + 1] as number) * (win[n1 + 1] as number);
      const a2r = (src[n2] as number) * (win[n2] as number);
      const a2i = (src[n2 + 1] as number) * (win[n2 + 1] as number);
      const a3r = (src[n3] as number) * (win[n3] as number);
      const a3i = (src[n3 + 1] as number) * (win[n3 + 1] as number);
      const a4r = (src[n4] as number) * (win[n4] as number);
      const a4i = (src[n4 + 1] as number) * (win[n4 + 1] as number);
      const a5r = (src[n5] as number) * (win[n5] as number);
      const a5i = (src[n5 + 1] as number) * (win[n5 + 1] as number);
      const a6r = (src[n6] as number) * (win[n6] as number);
      const a6i = (src[n6 + 1] as number) * (win[n6 + 1] as number);
      const a7r = (src[n7] as number) * (win[n7] as number);
      const a7i = (src[n7 + 1] as number) * (win[n7 + 1] as number);
      // Even part E = DFT4(a0, a2, a4, a6) = c0..c3, odd part O = DFT4(a1, a3, a5, a7) = c4..c7 (-i (x + i y) = y - i x).
      const b0r = a0r + a4r;
      const b0i = a0i + a4i;
      const b1r = a0r - a4r;
      const b1i = a0i - a4i;
      const b2r = a2r + a6r;
      const b2i = a2i + a6i;
      const dr = a2r - a6r;
      const di = a2i - a6i;
      const b4r = a1r + a5r;
      const b4i = a1i + a5i;
      const b5r = a1r - a5r;
      const b5i = a1i - a5i;
      const b6r = a3r + a7r;
      const b6i = a3i + a7i;
      const er = a3r - a7r;
      const ei = a3i - a7i;
      const c0r = b0r + b2r;
      const c0i = b0i + b2i;
      const c2r = b0r - b2r;
      const c2i = b0i - b2i;
      const c1r = b1r + di;
      const c1i = b1i - dr;
      const c3r = b1r - di;
      const c3i = b1i + dr;
      const c4r = b4r + b6r;
      const c4i = b4i + b6i;
      const c6r = b4r - b6r;
      const c6i = b4i - b6i;
      const c5r = b5r + ei;
      const c5i = b5i - er;
      const c7r = b5r - ei;
      const c7i = b5i + er;
      // X_k = E_k + e^{-i pi k / 4} O_k, X_(k+4) = E_k - e^{-i pi k / 4} O_k.
      const t5r = (c5r + c5i) * SQRT_HALF;
      const t5i = (c5i - c5r) * SQRT_HALF;
      const t7r = (c7i - c7r) * SQRT_HALF;
      const t7i = -(c7r + c7i) * SQRT_HALF;
      zr[a] = c0r + c4r;
      zi[a] = c0i + c4i;
      zr[a + 4] = c0r - c4r;
      zi[a + 4] = c0i - c4i;
      zr[a + 1] = c1r + t5r;
      zi[a + 1] = c1i + t5i;
      zr[a + 5] = c1r - t5r;
      zi[a + 5] = c1i - t5i;
      zr[a + 2] = c2r + c6i;
      zi[a + 2] = c2i - c6r;
      zr[a + 6] = c2r - c6i;
      zi[a + 6] = c2i + c6r;
      zr[a + 3] = c3r + t7r;
      zi[a + 3] = c3i + t7i;
      zr[a + 7] = c3r - t7r;
      zi[a + 7] = c3i - t7i;
    }
  }
}

/**
 * One radix-8 decimation-in-time pass: eight interleaved sub-transforms of
 * length `span` become transforms of length 8 span. Twiddle q of offset j
 * is e^{-2 pi i j q / (8 span)}, stored at 7 j + q - 1.
 */
export function radix8Pass(zr: Float64Array, zi: Float64Array, span: number, cos: Float64Array, sin: Float64Array): void {
  const half = zr.length;
  const block = 8 * span;
  for (let j = 0; j < span; j++) {
    const t = 7 * j;
    const c1 = cos[t] as number;
    const s1 = sin[t] as number;
    const c2 = cos[t + 1] as number;
    const s2 = sin[t + 1] as number;
    const c3 = cos[t + 2] as number;
    const s3 = sin[t + 2] as number;
    const c4 = cos[t + 3] as number;
    const s4 = sin[t + 3] as number;
    const c5 = cos[t + 4] as number;
    const s5 = sin[t + 4] as number;
    const c6 = cos[t + 5] as number;
    const s6 = sin[t + 5] as number;
    const c7 = cos[t + 6] as number;
    const s7 = sin[t + 6] as number;
    for (let a = j; a < half; a += block) {
      const a1 = a + span;
      const a2 = a1 + span;
      const a3 = a2 + span;
      const a4 = a3 + span;
      const a5 = a4 + span;
      const a6 = a5 + span;
      const a7 = a6 + span;
      // (x + i y) e^{-i theta} = (x c + y s) + i (y c - x s)
      const x1 = zr[a1] as number;
      const y1 = zi[a1] as number;
      const x2 = zr[a2] as number;
      const y2 = zi[a2] as number;
      const x3 = zr[a3] as number;
      const y3 = zi[a3] as number;
      const x4 = zr[a4] as number;
      const y4 = zi[a4] as number;
      const x5 = zr[a5] as number;
      const y5 = zi[a5] as number;
      const x6 = zr[a6] as number;
      const y6 = zi[a6] as number;
      const x7 = zr[a7] as number;
      const y7 = zi[a7] as number;
      const a0r = zr[a] as number;
      const a0i = zi[a] as number;
      const a1r = x1 * c1 + y1 * s1;
      const a1i = y1 * c1 - x1 * s1;
      const a2r = x2 * c2 + y2 * s2;
      const a2i = y2 * c2 - x2 * s2;
      const a3r = x3 * c3 + y3 * s3;
      const a3i = y3 * c3 - x3 * s3;
      const a4r = x4 * c4 + y4 * s4;
      const a4i = y4 * c4 - x4 * s4;
      const a5r = x5 * c5 + y5 * s5;
      const a5i = y5 * c5 - x5 * s5;
      const a6r = x6 * c6 + y6 * s6;
      const a6i = y6 * c6 - x6 * s6;
      const a7r = x7 * c7 + y7 * s7;
      const a7i = y7 * c7 - x7 * s7;
      // Even part E = DFT4(a0, a2, a4, a6) = c0..c3, odd part O = DFT4(a1, a3, a5, a7) = c4..c7 (-i (x + i y) = y - i x).
      const b0r = a0r + a4r;
      const b0i = a0i + a4i;
      const b1r = a0r - a4r;
      const b1i = a0i - a4i;
      const b2r = a2r + a6r;
      const b2i = a2i + a6i;
      const dr = a2r - a6r;
      const di = a2i - a6i;
      const b4r = a1r + a5r;
      const b4i = a1i + a5i;
      const b5r = a1r - a5r;
      const b5i = a1i - a5i;
      const b6r = a3r + a7r;
      const b6i = a3i + a7i;
      const er = a3r - a7r;
      const ei = a3i - a7i;
      const c0r = b0r + b2r;
      const c0i = b0i + b2i;
      const c2r = b0r - b2r;
      const c2i = b0i - b2i;
      const c1r = b1r + di;
      const c1i = b1i - dr;
      const c3r = b1r - di;
      const c3i = b1i + dr;
      const c4r = b4r + b6r;
      const c4i = b4i + b6i;
      const c6r = b4r - b6r;
      const c6i = b4i - b6i;
      const c5r = b5r + ei;
      const c5i = b5i - er;
      const c7r = b5r - ei;
      const c7i = b5i + er;
      // X_k = E_k + e^{-i pi k / 4} O_k, X_(k+4) = E_k - e^{-i pi k / 4} O_k.
      const t5r = (c5r + c5i) * SQRT_HALF;
      const t5i = (c5i - c5r) * SQRT_HALF;
      const t7r = (c7i - c7r) * SQRT_HALF;
      const t7i = -(c7r + c7i) * SQRT_HALF;
      zr[a] = c0r + c4r;
      zi[a] = c0i + c4i;
      zr[a4] = c0r - c4r;
      zi[a4] = c0i - c4i;
      zr[a1] = c1r + t5r;
      zi[a1] = c1i + t5i;
      zr[a5] = c1r - t5r;
      zi[a5] = c1i - t5i;
      zr[a2] = c2r + c6i;
      zi[a2] = c2i - c6r;
      zr[a6] = c2r - c6i;
      zi[a6] = c2i + c6r;
      zr[a3] = c3r + t7r;
      zi[a3] = c3i + t7i;
      zr[a7] = c3r - t7r;
      zi[a7] = c3i - t7i;
    }
  }
}

/**
 * Input index at each position for a decimation-in-time FFT of length n
 * whose passes combine by `radices`, outermost (last pass) first: the top
 * level splits indices by their residue mod radices[0] into consecutive
 * sub-transforms, recursively.
 */
export function digitReversal(n: number, radices: number[]): Uint32Array {
  const order = new Uint32Array(n);
  const place = (pos: number, first: number, stride: number, size: number, level: number): void => {
    if (size === 1) {
      order[pos] = first;
      return;
    }
    const r = radices[level] as number;
    const sub = size / r;
    for (let q = 0; q < r; q++) place(pos + q * sub, first + q * stride, stride * r, sub, level + 1);
  };
  place(0, 0, 1, n, 0);
  return order;
}
