import { ContextSource, ErrorCode, Modality, UnsupportedInput, type ContextItem, type InputChunk, type SessionError } from "@microturn/protocol";
import { describe, expect, it } from "vitest";
import { SessionFault, toSessionError } from "../errors.js";
import { EngineInput, type InputMedia } from "./engine-input.js";

const TEXT_ONLY = [Modality.MODALITY_TEXT];
const AUDIO_VIDEO = [Modality.MODALITY_TEXT, Modality.MODALITY_AUDIO, Modality.MODALITY_VIDEO];
const dmel = { frames: 1, channels: 2, codes: new Uint8Array([1, 2]) };
const patches = { patchSizePx: 40, rows: 1, cols: 1, rgb: new Uint8Array(40 * 40 * 3), offsetMs: 0 };

const chunk = (seq: number, parts: Partial<InputChunk> = {}): InputChunk => ({
  seq,
  startMs: seq * 200,
  durationMs: 200,
  text: "",
  frames: [],
  patches: [],
  userSpeaking: false,
  toolChoice: "",
  ...parts,
});

function inputFor(inputModalities: Modality[], unsupportedInput: UnsupportedInput, options: { media?: InputMedia; context?: ContextItem[] } = {}) {
  const errors: SessionError[] = [];
  const taken: number[] = [];
  const input = new EngineInput({
    capabilities: { engine: "test-engine", inputModalities },
    config: { unsupportedInput },
    ...(options.media ? { media: options.media } : {}),
    reportError: (err, context) => errors.push(toSessionError(err, context)),
    takeDeliveries: (c) => {
      taken.push(c.seq);
      return options.context ?? [];
    },
  });
  return { input, errors, taken };
}

describe("EngineInput", () => {
  it("under NOTE replaces input the engine cannot take by a note, reported once per modality", () => {
    const { input, errors } = inputFor(TEXT_ONLY, UnsupportedInput.UNSUPPORTED_INPUT_NOTE);
    const first = input.toEngineChunk(chunk(0, { text: "look at this", dmel, patches: [patches] }));
    expect(first.text).toBe("[audio: 200 ms] [video: 200 ms] look at this");
    expect(first.audio).toBeUndefined();
    expect(first.video).toBeUndefined();
    expect(errors.map((e) => [e.code, e.seq, e.fatal])).toEqual([
      [ErrorCode.ERROR_CODE_UNSUPPORTED_MODALITY, 0, false],
      [ErrorCode.ERROR_CODE_UNSUPPORTED_MODALITY, 0, false],
    ]);
    expect(errors[0]!.message).toContain("engine test-engine cannot take audio; it is replaced by a note");
    expect(errors[1]!.message).toContain("cannot take video");
    // Later chunks keep getting the note but no further report; a note alone becomes the text.
    expect(input.toEngineChunk(chunk(1, { dmel })).text).toBe("[audio: 200 ms]");
    expect(errors).toHaveLength(2);
  });

  it("under REJECT (and when unset) drops the input, keeps the rest of the chunk, and reports every chunk", () => {
    for (const policy of [UnsupportedInput.UNSUPPORTED_INPUT_REJECT, UnsupportedInput.UNSUPPORTED_INPUT_UNSPECIFIED]) {
      const { input, errors } = inputFor(TEXT_ONLY, policy);
      const first = input.toEngineChunk(chunk(0, { text: "hi", dmel }));
      expect(first).toMatchObject({ seq: 0, text: "hi" });
      expect(first.audio).toBeUndefined();
      expect(input.toEngineChunk(chunk(1, { dmel })).text).toBe("");
      expect(errors.map((e) => [e.code, e.seq])).toEqual([
        [ErrorCode.ERROR_CODE_UNSUPPORTED_MODALITY, 0],
        [ErrorCode.ERROR_CODE_UNSUPPORTED_MODALITY, 1],
      ]);
      expect(errors[1]!.message).toBe("engine test-engine cannot take audio; the audio of seq 1 was not used (set unsupported_input NOTE to replace it by a note)");
    }
  });

  it("passes dMel and patches through, converts PCM and frames with the media converter", () => {
    const converted = { frames: 2, channels: 2, codes: new Uint8Array([9, 9, 9, 9]) };
    const media: InputMedia = { audio: () => converted, video: (frames) => frames.map((f) => ({ ...patches, offsetMs: f.offsetMs })) };
    const { input, errors } = inputFor(AUDIO_VIDEO, UnsupportedInput.UNSUPPORTED_INPUT_NOTE, { media });
    expect(input.toEngineChunk(chunk(0, { dmel, patches: [patches] }))).toMatchObject({ audio: dmel, video: [patches] });
    const fromRaw = input.toEngineChunk(chunk(1, { pcm: { sampleRateHz: 16000, channels: 1, pcm16: new Uint8Array(640) }, patches: [patches], frames: [{ widthPx: 40, heightPx: 40, rgb: new Uint8Array(40 * 40 * 3), offsetMs: 80 }] }));
    expect(fromRaw.audio).toBe(converted);
    expect(fromRaw.video?.map((p) => p.offsetMs)).toEqual([0, 80]);
    expect(errors).toEqual([]);
  });

  it("fails raw media without a converter before taking the boundary's deliveries", () => {
    const { input, taken } = inputFor(AUDIO_VIDEO, UnsupportedInput.UNSUPPORTED_INPUT_NOTE);
    let thrown: unknown;
    try {
      input.toEngineChunk(chunk(0, { pcm: { sampleRateHz: 16000, channels: 1, pcm16: new Uint8Array(640) } }));
    } catch (err) {
      thrown = err;
    }
    expect(SessionFault.isInstance(thrown) && thrown.code).toBe(ErrorCode.ERROR_CODE_INTERNAL);
    // Still pending, so the next chunk's boundary delivers them.
    expect(taken).toEqual([]);
  });

  it("carries the context due at the chunk's boundary", () => {
    const context = [{ source: ContextSource.CONTEXT_SOURCE_TOOL, text: "[tool calc result] 42", refId: "calc" }];
    const { input, taken } = inputFor(TEXT_ONLY, UnsupportedInput.UNSUPPORTED_INPUT_NOTE, { context });
    expect(input.toEngineChunk(chunk(3, { text: "and?" }))).toEqual({ seq: 3, startMs: 600, durationMs: 200, text: "and?", context });
    expect(taken).toEqual([3]);
  });
});
