// Sample-rate conversion to the dMel rate (or any rate): a linear-phase
// windowed-sinc (Kaiser) polyphase filter at the exact rational ratio. Output
// sample j sits at input time j * from / to exactly (zero phase, no delay), so
// the resampler needs `halfWidth` input samples of lookahead. It streams: the
// output is the same float for float however the input is split into pushes.
// Ratios with few phases (44.1, 48, 96 kHz ...) use exact per-phase taps; the
// rest (44101 Hz has 16000 phases) interpolate a finely sampled kernel.

import { MediaError, checkFinite, checkSampleRate } from "./errors.js";

/** Filter design. Defaults (48 kHz -> 16 kHz): flat (< 0.05 dB) to 7 kHz, -4.4 dB at 7.5 kHz, aliases from 8.5 kHz up below -89 dB. */
export interface ResamplerOptions {
  /** Sinc zero crossings on each side of the centre tap (filter length). Default 32. */
  zeroCrossings?: number;
  /** Cutoff as a fraction of the lower of the two Nyquist frequencies. Default 0.945. */
  rolloff?: number;
  /** Kaiser window beta. Default 8.6. */
  kaiserBeta?: number;
}

/**
 * Most per-phase taps (up x taps) worth precomputing exactly: 512 KB, which
 * every standard rate fits (44.1 -> 16 kHz: 160 phases x 206 taps). Past it a
 * table costs a besselI0 per entry up front (47996 Hz: 816k entries, 6.5 MB,
 * 76 ms per Resampler) and is read too sparsely to pay back.
 */
const MAX_TABLE = 1 << 16;
/**
 * Kernel samples per sinc zero crossing for ratios without a per-phase table.
 * Linear interpolation between them is off by at most pi^2 / (8 * 512^2) of
 * the kernel's peak (-110 dB, libsamplerate-style), far under the
 * filter's own -89 dB stopband and 16-bit input's quantisation noise.
 */
const KERNEL_STEPS = 512;

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

/** Modified Bessel function of the first kind, order 0 (power series; converges fast for the betas used). */
function besselI0(x: number): number {
  let sum = 1;
  let term = 1;
  const q = (x * x) / 4;
  for (let k = 1; k < 200; k++) {
    term *= q / (k * k);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return sum;
}

/**
 * The filter at `pos` kernel steps from the centre, by linear interpolation in
 * a `sampledKernel` table (which reaches every pos a tap can have). Both emit
 * paths use it, so an output sample is the same float whichever computes it.
 */
function kernelTap(kernel: Float64Array, pos: number): number {
  const i = pos | 0;
  return (kernel[2 * i] as number) + (pos - i) * (kernel[2 * i + 1] as number);
}

/** Streaming resampler from `fromRate` to `toRate` (see module header); push any sizes, then flush. */
export class Resampler {
  readonly fromRate: number;
  readonly toRate: number;
  private readonly up: number;
  private readonly down: number;
  private readonly cutoff: number;
  private readonly halfWidth: number;
  private readonly beta: number;
  private readonly i0Beta: number;
  /** Taps span input indices n0 - reach + 1 .. n0 + reach around n0 = floor(t). */
  private readonly reach: number;
  /** Per-phase taps (up x 2*reach), or null when too large; then taps come from `kernel`. */
  private readonly table: Float64Array | null;
  /**
   * Without a table: the filter at KERNEL_STEPS points per zero crossing from
   * the centre out, interleaved with the step to the next point, so a tap is
   * one fused lookup. Computing taps exactly per output sample instead cost a
   * besselI0 per tap (50-100 ms per 200 ms chunk at 44101 or 95999 Hz).
   */
  private readonly kernel: Float64Array | null;
  /** Kernel index per input sample of distance: KERNEL_STEPS zero crossings per 1 / (2 * cutoff) samples. */
  private readonly kernelScale: number;
  private buffer = new Float64Array(4096);
  /** Absolute input index of buffer[0]. */
  private bufferStart = 0;
  private received = 0;
  private produced = 0;

  constructor(fromRate: number, toRate: number, options: ResamplerOptions = {}) {
    checkSampleRate(fromRate, "fromRate");
    checkSampleRate(toRate, "toRate");
    const zeroCrossings = options.zeroCrossings ?? 32;
    const rolloff = options.rolloff ?? 0.945;
    this.beta = options.kaiserBeta ?? 8.6;
    if (!Number.isInteger(zeroCrossings) || zeroCrossings < 1 || zeroCrossings > 256) {
      throw new MediaError("invalid_option", `zeroCrossings must be an integer in [1, 256], got ${String(zeroCrossings)}`);
    }
    if (!(rolloff > 0 && rolloff <= 1)) {
      throw new MediaError("invalid_option", `rolloff must be in (0, 1], got ${String(rolloff)}`);
    }
    if (!(this.beta >= 0 && this.beta < 50)) {
      throw new MediaError("invalid_option", `kaiserBeta must be in [0, 50), got ${String(this.beta)}`);
    }
    this.fromRate = fromRate;
    this.toRate = toRate;
    const g = gcd(fromRate, toRate);
    this.up = toRate / g;
    this.down = fromRate / g;
    // Cutoff in cycles per input sample.
    this.cutoff = 0.5 * Math.min(1, this.up / this.down) * rolloff;
    this.halfWidth = zeroCrossings / (2 * this.cutoff);
    this.i0Beta = besselI0(this.beta);
    this.reach = Math.ceil(this.halfWidth) + 1;
    this.kernelScale = 2 * this.cutoff * KERNEL_STEPS;
    const taps = 2 * this.reach;
    if (this.up * taps <= MAX_TABLE) {
      this.table = new Float64Array(this.up * taps);
      for (let phase = 0; phase < this.up; phase++) {
        for (let k = 0; k < taps; k++) {
          this.table[phase * taps + k] = this.tap(k - this.reach + 1 - phase / this.up);
        }
      }
      this.kernel = null;
    } else {
      this.table = null;
      this.kernel = this.sampledKernel();
    }
  }

  /** Filter value at distance d input samples from the output instant. */
  private tap(d: number): number {
    const x = d / this.halfWidth;
    if (x <= -1 || x >= 1) return 0;
    const a = 2 * Math.PI * this.cutoff * d;
    const sinc = a === 0 ? 1 : Math.sin(a) / a;
    return 2 * this.cutoff * sinc * (besselI0(this.beta * Math.sqrt(1 - x * x)) / this.i0Beta);
  }

  /**
   * `tap` at KERNEL_STEPS points per zero crossing, as (value, step to the
   * next value) pairs, out to `reach` samples so that no tap needs a bounds
   * check (past `halfWidth` the values are 0).
   */
  private sampledKernel(): Float64Array {
    const points = Math.ceil(this.reach * this.kernelScale) + 2;
    const values = new Float64Array(points + 1);
    for (let i = 0; i < points; i++) values[i] = this.tap(i / this.kernelScale);
    const kernel = new Float64Array(2 * points);
    for (let i = 0; i < points; i++) {
      kernel[2 * i] = values[i] as number;
      kernel[2 * i + 1] = (values[i + 1] as number) - (values[i] as number);
    }
    return kernel;
  }

  /** Output samples a signal of `inputLength` samples yields in total (after flush). */
  outputLength(inputLength: number): number {
    return Math.ceil((inputLength * this.up) / this.down);
  }

  /** Adds input; returns the output samples whose filter support is now complete. */
  push(samples: Float32Array): Float32Array {
    checkFinite(samples, this.received);
    this.append(samples);
    const n0Last = this.received - 1 - this.reach; // largest n0 whose taps are all received
    const ready = n0Last < 0 ? 0 : Math.floor(((n0Last + 1) * this.up - 1) / this.down) + 1;
    return this.emit(Math.max(ready, this.produced));
  }

  /** Treats the input as ended (zeros after it), returns the remaining output and resets for a new stream. */
  flush(): Float32Array {
    const out = this.emit(this.outputLength(this.received));
    this.bufferStart = 0;
    this.received = 0;
    this.produced = 0;
    return out;
  }

  private append(samples: Float32Array): void {
    const used = this.received - this.bufferStart;
    // Drop input no future output can reach.
    const nextN0 = Math.floor((this.produced * this.down) / this.up);
    const keepFrom = Math.max(this.bufferStart, nextN0 - this.reach + 1);
    const drop = Math.min(keepFrom - this.bufferStart, used);
    const keep = used - drop;
    if (keep + samples.length > this.buffer.length) {
      const grown = new Float64Array(Math.max(this.buffer.length * 2, keep + samples.length));
      grown.set(this.buffer.subarray(drop, used));
      this.buffer = grown;
    } else if (drop > 0) {
      this.buffer.copyWithin(0, drop, used);
    }
    this.bufferStart += drop;
    this.buffer.set(samples, keep);
    this.received += samples.length;
  }

  private emit(until: number): Float32Array {
    const count = Math.max(0, until - this.produced);
    const out = new Float32Array(count);
    const { up, down, reach, table, kernel, kernelScale, buffer, bufferStart, received } = this;
    const taps = 2 * reach;
    for (let o = 0; o < count; o++) {
      const j = this.produced + o;
      const n0 = Math.floor((j * down) / up);
      const phase = j * down - n0 * up;
      const first = n0 - reach + 1;
      // Tap k sits k + d0 input samples from the output instant.
      const d0 = 1 - reach - phase / up;
      let acc = 0;
      if (first >= 0 && first + taps <= received) {
        // Every tap inside the received input: the common case, no per-tap checks.
        const base = first - bufferStart;
        if (table !== null) {
          const row = phase * taps;
          for (let k = 0; k < taps; k++) acc += (buffer[base + k] as number) * (table[row + k] as number);
        } else {
          for (let k = 0; k < taps; k++) acc += (buffer[base + k] as number) * kernelTap(kernel as Float64Array, Math.abs(k + d0) * kernelScale);
        }
      } else {
        for (let k = 0; k < taps; k++) {
          const n = first + k;
          if (n < 0 || n >= received) continue;
          const h = table !== null ? (table[phase * taps + k] as number) : kernelTap(kernel as Float64Array, Math.abs(k + d0) * kernelScale);
          acc += (buffer[n - bufferStart] as number) * h;
        }
      }
      out[o] = acc;
    }
    this.produced += count;
    return out;
  }
}

/** Resamples a whole mono signal; length becomes ceil(length * toRate / fromRate). */
export function resample(samples: Float32Array, fromRate: number, toRate: number, options?: ResamplerOptions): Float32Array {
  const resampler = new Resampler(fromRate, toRate, options);
  if (fromRate === toRate) {
    checkFinite(samples);
    return samples.slice();
  }
  const head = resampler.push(samples);
  const tail = resampler.flush();
  const out = new Float32Array(head.length + tail.length);
  out.set(head);
  out.set(tail, head.length);
  return out;
}
