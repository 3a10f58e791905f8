// Slaney-style mel filterbank (the Auditory Toolbox formulas, same as
// librosa's default `htk=False, norm="slaney"`), stored sparse: each filter is
// a run of non-zero weights over consecutive FFT bins.

const F_SP = 200 / 3; // Hz per mel in the linear part
const MIN_LOG_HZ = 1000;
const MIN_LOG_MEL = MIN_LOG_HZ / F_SP; // 15
const LOG_STEP = Math.log(6.4) / 27;

/** Slaney mel scale: linear below 1 kHz (3 mel per 200 Hz), logarithmic above. */
export function hzToMel(hz: number): number {
  return hz < MIN_LOG_HZ ? hz / F_SP : MIN_LOG_MEL + Math.log(hz / MIN_LOG_HZ) / LOG_STEP;
}

/** Inverse of `hzToMel`. */
export function melToHz(mel: number): number {
  return mel < MIN_LOG_MEL ? mel * F_SP : MIN_LOG_HZ * Math.exp(LOG_STEP * (mel - MIN_LOG_MEL));
}

/** A mel filterbank in sparse form. */
export interface MelFilterbank {
  readonly channels: number;
  readonly bins: number;
  /** First FFT bin of each filter. */
  readonly start: Int32Array;
  /** Offset of each filter's weights in `weights`; filter m has offset[m+1] - offset[m] weights. */
  readonly offset: Int32Array;
  readonly weights: Float64Array;
}

/**
 * Triangular filters with corners at channels + 2 points evenly spaced on the
 * Slaney mel scale from fminHz to fmaxHz, each scaled by 2 / (upper - lower
 * corner in Hz) so every filter has unit area in Hz.
 */
export function melFilterbank(
  sampleRate: number,
  nFft: number,
  channels: number,
  fminHz: number,
  fmaxHz: number,
): MelFilterbank {
  const bins = nFft / 2 + 1;
  const melMin = hzToMel(fminHz);
  const melMax = hzToMel(fmaxHz);
  const corners = new Float64Array(channels + 2);
  for (let i = 0; i < channels + 2; i++) {
    corners[i] = melToHz(melMin + ((melMax - melMin) * i) / (channels + 1));
  }
  const start = new Int32Array(channels);
  const offset = new Int32Array(channels + 1);
  const runs: number[][] = [];
  for (let m = 0; m < channels; m++) {
    const lo = corners[m] as number;
    const mid = corners[m + 1] as number;
    const hi = corners[m + 2] as number;
    const norm = 2 / (hi - lo);
    const run: number[] = [];
    let first = -1;
    for (let k = 0; k < bins; k++) {
      const f = (k * sampleRate) / nFft;
      const w = Math.max(0, Math.min((f - lo) / (mid - lo), (hi - f) / (hi - mid)));
      if (w > 0) {
        if (first < 0) first = k;
        // Bins inside a filter are contiguous, so zeros between first and last cannot occur.
        run.push(w * norm);
      }
    }
    start[m] = Math.max(first, 0);
    offset[m + 1] = (offset[m] as number) + run.length;
    runs.push(run);
  }
  const weights = new Float64Array(offset[channels] as number);
  runs.forEach((run, m) => weights.set(run, offset[m] as number));
  return { channels, bins, start, offset, weights };
}

/** The filterbank as a dense channels x bins matrix, row-major (for tests and other implementations). */
export function denseMelFilterbank(fb: MelFilterbank): Float64Array {
  const dense = new Float64Array(fb.channels * fb.bins);
  for (let m = 0; m < fb.channels; m++) {
    const s = fb.start[m] as number;
    for (let j = fb.offset[m] as number, k = s; j < (fb.offset[m + 1] as number); j++, k++) {
      dense[m * fb.bins + k] = fb.weights[j] as number;
    }
  }
  return dense;
}
