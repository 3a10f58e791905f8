import { float32ToPcm16Bytes } from "@microturn/media";
import { ErrorCode, Modality, OutputMode } from "@microturn/protocol";
import { describe, expect, it } from "vitest";
import { SessionFault } from "../errors.js";
import { Speech } from "./speech.js";

const speaking = { engine: "test", outputModalities: [Modality.MODALITY_TEXT, Modality.MODALITY_AUDIO] };
const textOnly = { engine: "test", outputModalities: [Modality.MODALITY_TEXT] };
const tone = (samples: number, rate: number) => float32ToPcm16Bytes(Float32Array.from({ length: samples }, (_, i) => 0.5 * Math.sin((2 * Math.PI * 440 * i) / rate)));

function faultOf(make: () => unknown): SessionFault {
  try {
    make();
  } catch (err) {
    if (SessionFault.isInstance(err)) return err;
    throw err;
  }
  throw new Error("expected a SessionFault");
}

describe("Speech", () => {
  it("refuses AUDIO output on an engine that only writes text, and output rates out of range, as fatal start errors", () => {
    const audioOnText = faultOf(() => new Speech({ outputMode: OutputMode.OUTPUT_MODE_AUDIO, outputSampleRateHz: 0 }, textOnly));
    expect(audioOnText).toMatchObject({ code: ErrorCode.ERROR_CODE_UNSUPPORTED_MODALITY, fatal: true });
    expect(audioOnText.message).toMatch(/test engine produces text only/);
    for (const rate of [7999, 48_001, 22_050.5]) {
      expect(faultOf(() => new Speech({ outputMode: OutputMode.OUTPUT_MODE_AUDIO, outputSampleRateHz: rate }, speaking))).toMatchObject({
        code: ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
        fatal: true,
      });
    }
    // Text sessions on a text engine are what they always were.
    expect(new Speech({ outputMode: OutputMode.OUTPUT_MODE_TEXT, outputSampleRateHz: 16000 }, textOnly).speaks).toBe(false);
    expect(new Speech({ outputMode: OutputMode.OUTPUT_MODE_UNSPECIFIED, outputSampleRateHz: 0 }, textOnly).speaks).toBe(false);
  });

  it("passes the engine's audio at its own rate, or resampled to the rate asked for, with its length in ms", () => {
    const pcm16 = tone(3200, 16000);
    const own = new Speech({ outputMode: OutputMode.OUTPUT_MODE_AUDIO, outputSampleRateHz: 0 }, speaking).output({ pcm16, sampleRateHz: 16000 })!;
    expect(own.audio).toEqual({ sampleRateHz: 16000, channels: 1, pcm16 });
    expect(own.durationMs).toBe(200);
    const resampled = new Speech({ outputMode: OutputMode.OUTPUT_MODE_AUDIO, outputSampleRateHz: 48000 }, speaking).output({ pcm16, sampleRateHz: 16000 })!;
    expect(resampled.audio.sampleRateHz).toBe(48000);
    // The resampler holds back its filter's few ms for the next turn.
    const samples = resampled.audio.pcm16.length / 2;
    expect(samples).toBeGreaterThan(9600 - 200);
    expect(samples).toBeLessThanOrEqual(9600);
    expect(resampled.durationMs).toBe(Math.round((samples / 48000) * 1000));
    // Three 12.5 ms tokens: 37.5 ms is sent as whole ms (duration_ms is an integer field).
    expect(new Speech({ outputMode: OutputMode.OUTPUT_MODE_AUDIO, outputSampleRateHz: 0 }, speaking).output({ pcm16: tone(600, 16000), sampleRateHz: 16000 })!.durationMs).toBe(38);
  });

  it("resamples turns as one stream: two turns join exactly as the whole would, and a reset starts afresh", () => {
    const config = { outputMode: OutputMode.OUTPUT_MODE_AUDIO, outputSampleRateHz: 44100 };
    const whole = tone(6400, 16000);
    const joined = new Speech(config, speaking);
    const first = joined.output({ pcm16: whole.subarray(0, 6400), sampleRateHz: 16000 })!.audio.pcm16;
    const second = joined.output({ pcm16: whole.subarray(6400), sampleRateHz: 16000 })!.audio.pcm16;
    const once = new Speech(config, speaking).output({ pcm16: whole, sampleRateHz: 16000 })!.audio.pcm16;
    expect(Buffer.concat([first, second]).equals(Buffer.from(once))).toBe(true);
    joined.reset();
    expect(Buffer.from(joined.output({ pcm16: whole.subarray(0, 6400), sampleRateHz: 16000 })!.audio.pcm16).equals(Buffer.from(first))).toBe(true);
  });

  it("gives nothing for a session that does not speak, for no audio, and drops half a sample", () => {
    const pcm16 = tone(160, 16000);
    expect(new Speech({ outputMode: OutputMode.OUTPUT_MODE_TEXT, outputSampleRateHz: 0 }, speaking).output({ pcm16, sampleRateHz: 16000 })).toBeUndefined();
    const speech = new Speech({ outputMode: OutputMode.OUTPUT_MODE_AUDIO, outputSampleRateHz: 0 }, speaking);
    expect(speech.output(undefined)).toBeUndefined();
    expect(speech.output({ pcm16: new Uint8Array(1), sampleRateHz: 16000 })).toBeUndefined();
    const odd = new Uint8Array(321);
    odd.set(pcm16);
    expect(speech.output({ pcm16: odd, sampleRateHz: 16000 })!.audio.pcm16.length).toBe(320);
  });
});
