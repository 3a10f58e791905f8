// dMel audio codes (ARCHITECTURE.md section 5; exact conventions in
// docs/media.md). The encoder is causal and streams: frame i is the window of
// samples [200 i - 600, 200 i + 200) (zeros before t = 0), so it is complete as
// soon as hop i has arrived, and pushing a signal in any pieces gives the same
// codes as encoding it whole.

import {
  DMEL_CHANNELS,
  DMEL_FMAX_HZ,
  DMEL_FMIN_HZ,
  DMEL_HOP,
  DMEL_LEVELS,
  DMEL_LOG_MAX,
  DMEL_LOG_MIN,
  DMEL_N_FFT,
  DMEL_SAMPLE_RATE,
  DMEL_WINDOW,
} from "./constants.js";
import { checkFinite, checkMono, checkSampleRate } from "./errors.js";
import { RealFft } from "./fft.js";
import { melFilterbank, type MelFilterbank } from "./mel.js";
import { Resampler, type ResamplerOptions } from "./resample.js";

/** dMel codes of a signal. */
export interface DmelCodes {
  /** Number of frames (12.5 ms each). */
  frames: number;
  /** Codes per frame; always 80. */
  channels: number;
  /** frames x channels codes in 0..15, frame-major (matches proto `DmelAudio.codes`). */
  codes: Uint8Array;
}

export interface DmelEncoderOptions {
  /** Rate of the pushed samples in Hz; anything but 16000 is resampled (see `Resampler`). Default 16000. */
  sampleRate?: number;
  /** Resampler design when `sampleRate` is not 16000. */
  resampler?: ResamplerOptions;
}

/** Quantises a log10 mel energy to its 4-bit code: nearest of 16 centres evenly spread over [-7, 2], ties upward. */
export function quantizeLogMel(value: number): number {
  const v = value < DMEL_LOG_MIN ? DMEL_LOG_MIN : value > DMEL_LOG_MAX ? DMEL_LOG_MAX : value;
  return Math.floor(((v - DMEL_LOG_MIN) * (DMEL_LEVELS - 1)) / (DMEL_LOG_MAX - DMEL_LOG_MIN) + 0.5);
}

/** The log10 mel energy a code stands for (its bin centre). */
export function dmelCodeCentre(code: number): number {
  return DMEL_LOG_MIN + (code * (DMEL_LOG_MAX - DMEL_LOG_MIN)) / (DMEL_LEVELS - 1);
}

/** Frames `computeDmel` yields for a 16 kHz signal of `samples` samples (the last hop zero-padded). */
export function dmelFrameCount(samples: number): number {
  return Math.ceil(samples / DMEL_HOP);
}

interface Tables {
  /** Periodic Hann window of 800, zero-padded to the FFT size so the FFT windows as it loads. */
  hann: Float64Array;
  fft: RealFft;
  mel: MelFilterbank;
  /** FFT bins any filter touches: [firstBin, endBin). */
  firstBin: number;
  endBin: number;
  /** Per binary exponent e (offset EXP_MIN, clamped): codes every energy in [2^e, 2^(e+1)) reaches for sure. */
  codeBase: Uint8Array;
  /** The one decision boundary inside [2^e, 2^(e+1)) (+Infinity if none): reaching it adds one. */
  codeStep: Float64Array;
}

// Decision boundaries are 10^0.6 (~3.98) apart, more than one binade, so each
// binade holds at most one. Energies below 2^EXP_MIN (< 10^-7) all get code 0,
// those from 2^EXP_MAX (> 10^2) all get 15.
const EXP_MIN = -25;
const EXP_MAX = 8;

// Tables shared by every encoder; built on first use.
let shared: Tables | undefined;
function tables(): Tables {
  if (shared === undefined) {
    const hann = new Float64Array(DMEL_N_FFT);
    // Periodic Hann (scipy/librosa `get_window("hann", 800)`).
    for (let n = 0; n < DMEL_WINDOW; n++) hann[n] = 0.5 - 0.5 * Math.cos((2 * Math.PI * n) / DMEL_WINDOW);
    const mel = melFilterbank(DMEL_SAMPLE_RATE, DMEL_N_FFT, DMEL_CHANNELS, DMEL_FMIN_HZ, DMEL_FMAX_HZ);
    const last = DMEL_CHANNELS - 1;
    // Code c means log10(energy) rounds to centre c, i.e. energy >= 10^(boundary) for c boundaries.
    // Comparing energies with these thresholds skips log10 per value; it agrees with
    // quantizeLogMel(log10(energy)) except within float rounding of a boundary.
    const thresholds = new Float64Array(DMEL_LEVELS - 1);
    const step = (DMEL_LOG_MAX - DMEL_LOG_MIN) / (DMEL_LEVELS - 1);
    for (let k = 0; k < DMEL_LEVELS - 1; k++) thresholds[k] = 10 ** (DMEL_LOG_MIN + (k + 0.5) * step);
    // The code of an energy is how many thresholds it reaches; index them by binade so one compare settles it.
    const codeBase = new Uint8Array(EXP_MAX - EXP_MIN + 1);
    const codeStep = new Float64Array(EXP_MAX - EXP_MIN + 1).fill(Infinity);
    for (let e = EXP_MIN; e <= EXP_MAX; e++) {
      const lo = 2 ** e;
      const hi = 2 ** (e + 1);
      for (const t of thresholds) {
        if (t <= lo) codeBase[e - EXP_MIN] = (codeBase[e - EXP_MIN] as number) + 1;
        else if (t < hi) codeStep[e - EXP_MIN] = t;
      }
    }
    if (thresholds[0]! < 2 ** (EXP_MIN + 1) || thresholds[DMEL_LEVELS - 2]! >= 2 ** EXP_MAX) throw new Error("dMel code table does not cover the thresholds");
    shared = {
      hann,
      fft: new RealFft(DMEL_N_FFT),
      mel,
      firstBin: mel.start[0] as number,
      endBin: (mel.start[last] as number) + (mel.offset[last + 1] as number) - (mel.offset[last] as number),
      codeBase,
      codeStep,
    };
  }
  return shared;
}

const CONTEXT = DMEL_WINDOW - DMEL_HOP; // 600 samples carried from earlier hops

/** Streaming dMel encoder: push PCM in any pieces, get the codes of each frame as soon as its hop is complete. */
export class DmelEncoder {
  /** Rate of the pushed samples. */
  readonly sampleRate: number;
  private readonly resampler: Resampler | null;
  private readonly tables: Tables;
  /** The latest 800 samples: 600 of context, then the hop being filled; zero after them up to the FFT size. */
  private readonly window = new Float64Array(DMEL_N_FFT);
  /** Bit view of one float64, to read an energy's binary exponent. */
  private readonly bits = new Float64Array(1);
  private readonly bitsHigh = new Int32Array(this.bits.buffer);
  private readonly highWord = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 1 : 0;
  private hopFill = 0;
  private received = 0;
  private framesDone = 0;
  private readonly mag = new Float64Array(DMEL_N_FFT / 2 + 1);

  constructor(options: DmelEncoderOptions = {}) {
    const rate = options.sampleRate ?? DMEL_SAMPLE_RATE;
    checkSampleRate(rate);
    this.sampleRate = rate;
    this.resampler = rate === DMEL_SAMPLE_RATE ? null : new Resampler(rate, DMEL_SAMPLE_RATE, options.resampler);
    this.tables = tables();
  }

  /** Frames emitted since construction or the last flush. */
  get frames(): number {
    return this.framesDone;
  }

  /** Adds mono samples; returns the codes (frames x 80, frame-major) of the frames they complete. */
  push(samples: Float32Array): Uint8Array {
    checkFinite(samples, this.received);
    this.received += samples.length;
    const input = this.resampler === null ? samples : this.resampler.push(samples);
    return this.encode(input, false);
  }

  /**
   * Ends the stream: a partial last hop is zero-padded into one more frame.
   * Returns its codes (0 or 1 frames, more if resampling held some back) and resets for a new stream.
   */
  flush(): Uint8Array {
    const input = this.resampler === null ? new Float32Array(0) : this.resampler.flush();
    const codes = this.encode(input, true);
    this.window.fill(0);
    this.hopFill = 0;
    this.received = 0;
    this.framesDone = 0;
    return codes;
  }

  private encode(input: Float32Array, end: boolean): Uint8Array {
    const pending = this.hopFill + input.length;
    let frames = Math.floor(pending / DMEL_HOP);
    const partial = end && pending % DMEL_HOP !== 0;
    if (partial) frames += 1;
    const codes = new Uint8Array(frames * DMEL_CHANNELS);
    let frame = 0;
    let pos = 0;
    while (pos < input.length) {
      const take = Math.min(DMEL_HOP - this.hopFill, input.length - pos);
      const window = this.window;
      for (let n = 0, at = CONTEXT + this.hopFill; n < take; n++) window[at + n] = input[pos + n] as number;
      this.hopFill += take;
      pos += take;
      if (this.hopFill === DMEL_HOP) {
        this.encodeFrame(codes, frame++ * DMEL_CHANNELS);
        this.window.copyWithin(0, DMEL_HOP, DMEL_WINDOW);
        this.hopFill = 0;
      }
    }
    if (partial) {
      this.window.fill(0, CONTEXT + this.hopFill, DMEL_WINDOW);
      this.encodeFrame(codes, frame * DMEL_CHANNELS);
    }
    return codes;
  }

  private encodeFrame(codes: Uint8Array, at: number): void {
    const { window, mag, bits, bitsHigh, highWord } = this;
    const { hann, fft, mel, firstBin, endBin, codeBase, codeStep } = this.tables;
    // Windowed and zero-padded to 1024 at its end inside the FFT (magnitudes do not depend on where the padding goes).
    fft.magnitude(window, hann, mag, firstBin, endBin);
    const { start, offset, weights } = mel;
    for (let m = 0; m < DMEL_CHANNELS; m++) {
      // Two running sums (even and odd terms) halve the chain of dependent adds.
      let even = 0;
      let odd = 0;
      const end = offset[m + 1] as number;
      let j = offset[m] as number;
      const k = (start[m] as number) - j;
      for (; j + 1 < end; j += 2) {
        even += (weights[j] as number) * (mag[j + k] as number);
        odd += (weights[j + 1] as number) * (mag[j + k + 1] as number);
      }
      if (j < end) even += (weights[j] as number) * (mag[j + k] as number);
      const energy = even + odd;
      // energy >= 0, so its biased exponent is the high word shifted down (0 for 0 and subnormals: code 0).
      bits[0] = energy;
      let e = ((bitsHigh[highWord] as number) >>> 20) - 1023;
      e = e < EXP_MIN ? 0 : e > EXP_MAX ? EXP_MAX - EXP_MIN : e - EXP_MIN;
      codes[at + m] = (codeBase[e] as number) + (energy >= (codeStep[e] as number) ? 1 : 0);
    }
    this.framesDone++;
  }
}

/**
 * dMel codes of a whole mono signal: exactly what a `DmelEncoder` yields for
 * it (pushes plus flush), so ceil(n / 200) frames at 16 kHz.
 * Pass `options.channels` when the source may be multi-channel; anything but 1 is refused (see `downmix`).
 */
export function computeDmel(
  samples: Float32Array,
  sampleRate: number,
  options: { channels?: number; resampler?: ResamplerOptions } = {},
): DmelCodes {
  checkSampleRate(sampleRate);
  if (options.channels !== undefined) checkMono(options.channels);
  const encoder = new DmelEncoder(
    options.resampler === undefined ? { sampleRate } : { sampleRate, resampler: options.resampler },
  );
  const head = encoder.push(samples);
  const tail = encoder.flush();
  const codes = new Uint8Array(head.length + tail.length);
  codes.set(head);
  codes.set(tail, head.length);
  return { frames: codes.length / DMEL_CHANNELS, channels: DMEL_CHANNELS, codes };
}
