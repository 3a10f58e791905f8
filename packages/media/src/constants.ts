// Fixed media parameters of the reference interaction model (ARCHITECTURE.md
// section 5, docs/media.md). Changing one changes the model's input, so these
// are constants, not options.

/** Length of one micro-turn of input, in milliseconds. */
export const CHUNK_MS = 200;

/** Sample rate the dMel encoder works at, in Hz. */
export const DMEL_SAMPLE_RATE = 16_000;
/** Analysis window: 50 ms at 16 kHz. */
export const DMEL_WINDOW = 800;
/** Hop between frames: 12.5 ms at 16 kHz. */
export const DMEL_HOP = 200;
/** Hop between frames in milliseconds. */
export const DMEL_HOP_MS = 12.5;
/** FFT size; the 800-sample window is zero-padded to it. */
export const DMEL_N_FFT = 1024;
/** Number of mel channels per frame. */
export const DMEL_CHANNELS = 80;
/** Lowest mel band edge, in Hz. */
export const DMEL_FMIN_HZ = 80;
/** Highest mel band edge, in Hz. */
export const DMEL_FMAX_HZ = 7600;
/** Lower clamp of log10 mel energies. */
export const DMEL_LOG_MIN = -7;
/** Upper clamp of log10 mel energies. */
export const DMEL_LOG_MAX = 2;
/** Floor applied before log10 so silence maps to a finite value (then clamped to DMEL_LOG_MIN). */
export const DMEL_LOG_FLOOR = 1e-10;
/** Quantisation levels (4 bits). */
export const DMEL_LEVELS = 16;
/** dMel frames in one 200 ms chunk. */
export const DMEL_FRAMES_PER_CHUNK = (CHUNK_MS * DMEL_SAMPLE_RATE) / 1000 / DMEL_HOP;

/** Side of one square video patch, in pixels. */
export const PATCH_SIZE = 40;
