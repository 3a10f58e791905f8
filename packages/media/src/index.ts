// @microturn/media: the media code the SDK and the sidecar share — dMel audio
// codes, 40x40 RGB video patches, 200 ms input framing, resampling and PCM
// helpers. No runtime dependencies. Conventions: docs/media.md.

export * from "./constants.js";
export { MediaError, type MediaErrorCode, checkFinite, checkMono, checkSampleRate } from "./errors.js";
export { RealFft } from "./fft.js";
export { hzToMel, melToHz, melFilterbank, denseMelFilterbank, type MelFilterbank } from "./mel.js";
export { Resampler, resample, type ResamplerOptions } from "./resample.js";
export { pcm16ToFloat32, float32ToPcm16, pcm16BytesToFloat32, float32ToPcm16Bytes, downmix } from "./pcm.js";
export {
  DmelEncoder,
  computeDmel,
  quantizeLogMel,
  dmelCodeCentre,
  dmelFrameCount,
  type DmelCodes,
  type DmelEncoderOptions,
} from "./dmel.js";
export { ChunkFramer, type AudioChunk, type ChunkFramerOptions } from "./framer.js";
export { MAX_PATCH_BYTES, Patchifier, patchBytes, patchify, type PatchifyOptions, type VideoPatchGrid } from "./patchify.js";
export { downscaleRgb, scaledSize, type DownscaleOptions } from "./downscale.js";
export { checkRgbFrame } from "./frame.js";
