// Limits and checks for client input, applied before anything is queued so a
// bad chunk never reaches the engine and the session stays usable.
import { PATCH_SIZE, patchBytes } from "@microturn/media";
import { ErrorCode, type InputChunk } from "@microturn/protocol";
import { SessionFault } from "../errors.js";

export const INPUT_LIMITS = {
  maxChunkDurationMs: 2000,
  maxTextChars: 4096,
  /** PCM per chunk: 2 s at 48 kHz mono. */
  maxPcmBytes: 2 * 48000 * 2,
  maxFramesPerChunk: 8,
  maxFramePixels: 1920 * 1080,
  maxDmelFrames: 160,
  /** Video patch bytes per chunk: those the client sends plus those its raw frames become. */
  maxPatchesBytes: 8 * 1920 * 1080 * 3,
} as const;

/** A module function, not a closure per call: every chunk is validated. */
function reject(chunk: InputChunk, code: ErrorCode, message: string): never {
  throw new SessionFault(code, message, { seq: chunk.seq });
}

/** Throws a SessionFault naming the first problem with the chunk. */
export function validateInputChunk(chunk: InputChunk): void {
  if (!(chunk.durationMs > 0 && chunk.durationMs <= INPUT_LIMITS.maxChunkDurationMs)) {
    reject(chunk, ErrorCode.ERROR_CODE_INVALID_ARGUMENT, `input seq ${chunk.seq}: duration_ms must be 1..${INPUT_LIMITS.maxChunkDurationMs}, got ${chunk.durationMs}`);
  }
  if (chunk.text.length > INPUT_LIMITS.maxTextChars) {
    reject(chunk, ErrorCode.ERROR_CODE_TOO_LARGE, `input seq ${chunk.seq}: text has ${chunk.text.length} chars, limit ${INPUT_LIMITS.maxTextChars}`);
  }
  const pcm = chunk.pcm;
  if (pcm) {
    if (pcm.channels !== 1) reject(chunk, ErrorCode.ERROR_CODE_INVALID_ARGUMENT, `input seq ${chunk.seq}: pcm must be mono (channels 1), got ${pcm.channels}`);
    if (!(pcm.sampleRateHz >= 8000 && pcm.sampleRateHz <= 96000)) {
      reject(chunk, ErrorCode.ERROR_CODE_INVALID_ARGUMENT, `input seq ${chunk.seq}: pcm sample_rate_hz must be 8000..96000, got ${pcm.sampleRateHz}`);
    }
    if (pcm.pcm16.length % 2 !== 0) reject(chunk, ErrorCode.ERROR_CODE_INVALID_ARGUMENT, `input seq ${chunk.seq}: pcm16 has an odd byte count (${pcm.pcm16.length})`);
    if (pcm.pcm16.length > INPUT_LIMITS.maxPcmBytes) {
      reject(chunk, ErrorCode.ERROR_CODE_TOO_LARGE, `input seq ${chunk.seq}: pcm16 has ${pcm.pcm16.length} bytes, limit ${INPUT_LIMITS.maxPcmBytes}`);
    }
  }
  const dmel = chunk.dmel;
  if (dmel) {
    if (dmel.channels !== 80) reject(chunk, ErrorCode.ERROR_CODE_INVALID_ARGUMENT, `input seq ${chunk.seq}: dmel channels must be 80, got ${dmel.channels}`);
    if (dmel.frames > INPUT_LIMITS.maxDmelFrames) reject(chunk, ErrorCode.ERROR_CODE_TOO_LARGE, `input seq ${chunk.seq}: ${dmel.frames} dmel frames, limit ${INPUT_LIMITS.maxDmelFrames}`);
    if (dmel.codes.length !== dmel.frames * dmel.channels) {
      reject(chunk, ErrorCode.ERROR_CODE_INVALID_ARGUMENT, `input seq ${chunk.seq}: dmel codes length ${dmel.codes.length} != frames x channels (${dmel.frames * dmel.channels})`);
    }
    if (dmel.codes.some((c) => c > 15)) reject(chunk, ErrorCode.ERROR_CODE_INVALID_ARGUMENT, `input seq ${chunk.seq}: dmel codes must be 0..15`);
  }
  if (chunk.frames.length > INPUT_LIMITS.maxFramesPerChunk) {
    reject(chunk, ErrorCode.ERROR_CODE_TOO_LARGE, `input seq ${chunk.seq}: ${chunk.frames.length} video frames, limit ${INPUT_LIMITS.maxFramesPerChunk}`);
  }
  // Frames count by the patches they become, edge patches padded to PATCH_SIZE: within the
  // pixel limit, a frame a few pixels wide makes up to 40x its own bytes (1 x 2,073,600 px, 6.2 MB
  // of RGB, is 249 MB of patches), so the pixel limit alone does not bound the work.
  let patchBytesInChunk = 0;
  for (const [index, frame] of chunk.frames.entries()) {
    if (frame.widthPx === 0 || frame.heightPx === 0) reject(chunk, ErrorCode.ERROR_CODE_INVALID_ARGUMENT, `input seq ${chunk.seq}: video frame has a zero dimension`);
    if (frame.widthPx * frame.heightPx > INPUT_LIMITS.maxFramePixels) {
      reject(chunk, ErrorCode.ERROR_CODE_TOO_LARGE, `input seq ${chunk.seq}: video frame ${frame.widthPx}x${frame.heightPx} over ${INPUT_LIMITS.maxFramePixels} pixels`);
    }
    if (frame.rgb.length !== frame.widthPx * frame.heightPx * 3) {
      reject(chunk, ErrorCode.ERROR_CODE_INVALID_ARGUMENT, `input seq ${chunk.seq}: video frame rgb is ${frame.rgb.length} bytes, expected ${frame.widthPx}x${frame.heightPx}x3`);
    }
    const bytes = patchBytes(frame.widthPx, frame.heightPx, PATCH_SIZE);
    patchBytesInChunk += bytes;
    if (patchBytesInChunk > INPUT_LIMITS.maxPatchesBytes) {
      reject(
        chunk,
        ErrorCode.ERROR_CODE_TOO_LARGE,
        `input seq ${chunk.seq}: video frame ${index} (${frame.widthPx}x${frame.heightPx}) makes ${bytes} bytes of ${PATCH_SIZE}x${PATCH_SIZE} patches (edge patches padded), ` +
          `bringing the chunk's video patches to ${patchBytesInChunk} bytes, limit ${INPUT_LIMITS.maxPatchesBytes}`,
      );
    }
  }
  for (const p of chunk.patches) {
    patchBytesInChunk += p.rgb.length;
    if (p.rgb.length !== p.rows * p.cols * p.patchSizePx * p.patchSizePx * 3 || p.patchSizePx === 0) {
      reject(chunk, ErrorCode.ERROR_CODE_INVALID_ARGUMENT, `input seq ${chunk.seq}: video patches rgb length does not match rows x cols x patch_size_px^2 x 3`);
    }
  }
  if (patchBytesInChunk > INPUT_LIMITS.maxPatchesBytes) {
    reject(chunk, ErrorCode.ERROR_CODE_TOO_LARGE, `input seq ${chunk.seq}: video patches (sent, plus those made from frames) are ${patchBytesInChunk} bytes, limit ${INPUT_LIMITS.maxPatchesBytes}`);
  }
}
