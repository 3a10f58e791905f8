import { ErrorCode, InputChunk } from "@microturn/protocol";
import { describe, expect, it } from "vitest";
import { SessionFault } from "../errors.js";
import { INPUT_LIMITS, validateInputChunk } from "./input-validation.js";

const chunk = (parts: Partial<InputChunk> = {}): InputChunk => InputChunk.fromPartial({ seq: 3, startMs: 600, durationMs: 200, ...parts });

const frame = (widthPx: number, heightPx: number, rgb = new Uint8Array(widthPx * heightPx * 3)) => ({ widthPx, heightPx, rgb, offsetMs: 0 });

/** The SessionFault validation throws for `input`, or undefined if it passes. */
function faultOf(input: InputChunk): SessionFault | undefined {
  try {
    validateInputChunk(input);
  } catch (error) {
    if (SessionFault.isInstance(error)) return error;
    throw error;
  }
  return undefined;
}

describe("validateInputChunk: video frames", () => {
  it("refuses a frame within the pixel limit whose padded patches are over the patch limit, naming it", () => {
    // 1 x 2,073,600 px = 1920 x 1080 pixels, but every 1-px row of a patch column pads out to
    // 40 px: 51,840 patches, 248,832,000 bytes (it once blocked the event loop for 2.3 s).
    const fault = faultOf(chunk({ frames: [frame(640, 480), frame(1, 2_073_600)] }));
    expect(fault).toMatchObject({ code: ErrorCode.ERROR_CODE_TOO_LARGE, seq: 3, fatal: false });
    expect(fault?.message).toBe(
      "input seq 3: video frame 1 (1x2073600) makes 248832000 bytes of 40x40 patches (edge patches padded), " +
        `bringing the chunk's video patches to 249753600 bytes, limit ${INPUT_LIMITS.maxPatchesBytes}`,
    );
  });

  it("counts every frame's patches against one budget per chunk", () => {
    // 2 x 259,200 px: 6480 patches, 31.1 MB each; one fits, two do not.
    const narrow = frame(2, 259_200);
    expect(faultOf(chunk({ frames: [narrow] }))).toBeUndefined();
    expect(faultOf(chunk({ frames: [narrow, narrow] }))?.message).toMatch(/^input seq 3: video frame 1 \(2x259200\) makes 31104000 bytes .* limit 49766400$/);
  });

  it("takes the most full-HD frames a chunk allows, and counts patches the client sends in the same budget", () => {
    const fullHd = frame(1920, 1080);
    const frames = Array.from({ length: INPUT_LIMITS.maxFramesPerChunk }, () => fullHd);
    expect(faultOf(chunk({ frames }))).toBeUndefined();
    const onePatch = { patchSizePx: 40, rows: 1, cols: 1, rgb: new Uint8Array(40 * 40 * 3), offsetMs: 0 };
    expect(faultOf(chunk({ patches: [onePatch] }))).toBeUndefined();
    expect(faultOf(chunk({ frames, patches: [onePatch] }))).toMatchObject({
      code: ErrorCode.ERROR_CODE_TOO_LARGE,
      message: `input seq 3: video patches (sent, plus those made from frames) are ${INPUT_LIMITS.maxPatchesBytes + 4800} bytes, limit ${INPUT_LIMITS.maxPatchesBytes}`,
    });
  });

  it("still refuses frames over the pixel limit or with the wrong byte count first", () => {
    expect(faultOf(chunk({ frames: [frame(1921, 1080, new Uint8Array(3))] }))?.message).toMatch(/video frame 1921x1080 over 2073600 pixels/);
    expect(faultOf(chunk({ frames: [frame(40, 40, new Uint8Array(3))] }))).toMatchObject({ code: ErrorCode.ERROR_CODE_INVALID_ARGUMENT });
  });
});
