// A session's spoken output: whether it speaks (SessionConfig.output_mode
// AUDIO, refused at start when the engine cannot), and each micro-turn's audio
// as the client asked for it (PCM16 mono at output_sample_rate_hz, the engine's
// own rate when 0). A turn's audio sets its place on the output timeline, so
// pacing and barge-in follow what is heard rather than a guess from the text.
import { float32ToPcm16Bytes, pcm16BytesToFloat32, Resampler } from "@microturn/media";
import { ErrorCode, Modality, OutputMode, type PcmAudio, type SessionConfig } from "@microturn/protocol";
import type { EngineCapabilities } from "../engines/engine.js";
import { SessionFault } from "../errors.js";

/** Output sample rates a client may ask for, Hz (0 takes the engine's). */
export const OUTPUT_RATE_RANGE_HZ = { min: 8_000, max: 48_000 } as const;

export class Speech {
  /** Whether the session asked for audio (and the engine can give it). */
  readonly speaks: boolean;
  private readonly outputRateHz: number;
  /**
   * One resampler for the whole stream, so turn boundaries join without a click
   * (resampling each turn alone pads it with silence on both sides) and its
   * table is built once. It holds back its filter's few ms until the next turn.
   */
  private resampler: Resampler | undefined;

  /** Throws the fatal SessionFault a start deserves when the config asks for what the engine cannot do. */
  constructor(config: Pick<SessionConfig, "outputMode" | "outputSampleRateHz">, capabilities: Pick<EngineCapabilities, "engine" | "outputModalities">) {
    this.speaks = config.outputMode === OutputMode.OUTPUT_MODE_AUDIO;
    if (this.speaks && !capabilities.outputModalities.includes(Modality.MODALITY_AUDIO)) {
      throw new SessionFault(
        ErrorCode.ERROR_CODE_UNSUPPORTED_MODALITY,
        `output_mode AUDIO: the ${capabilities.engine} engine produces text only; start with OUTPUT_MODE_TEXT or use an engine that speaks`,
        { fatal: true },
      );
    }
    const rate = config.outputSampleRateHz;
    if (rate !== 0 && (!Number.isInteger(rate) || rate < OUTPUT_RATE_RANGE_HZ.min || rate > OUTPUT_RATE_RANGE_HZ.max)) {
      throw new SessionFault(
        ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
        `output_sample_rate_hz ${rate}: use 0 (the engine's rate) or ${OUTPUT_RATE_RANGE_HZ.min}-${OUTPUT_RATE_RANGE_HZ.max} Hz`,
        { fatal: true },
      );
    }
    this.outputRateHz = rate;
  }

  /** A turn's audio as the client gets it, with its length in whole ms; undefined when the session does not speak or nothing was said. */
  output(audio: { pcm16: Uint8Array; sampleRateHz: number } | undefined): { audio: PcmAudio; durationMs: number } | undefined {
    if (!this.speaks || !audio || audio.pcm16.length < 2) return undefined;
    const rate = this.outputRateHz || audio.sampleRateHz;
    // An odd trailing byte is half a sample: dropped.
    const whole = audio.pcm16.length % 2 === 0 ? audio.pcm16 : audio.pcm16.subarray(0, audio.pcm16.length - 1);
    const pcm16 = rate === audio.sampleRateHz ? whole : float32ToPcm16Bytes(this.resamplerFor(audio.sampleRateHz, rate).push(pcm16BytesToFloat32(whole)));
    if (pcm16.length === 0) return undefined;
    // Whole ms, as OutputChunk.duration_ms is (a fraction fails the event's encoding).
    return { audio: { sampleRateHz: rate, channels: 1, pcm16 }, durationMs: Math.round((pcm16.length / 2 / rate) * 1000) };
  }

  /** The stream broke (a barge-in cut it, a rollover): what the resampler holds back belongs to unsaid audio. */
  reset(): void {
    this.resampler = undefined;
  }

  private resamplerFor(fromRate: number, toRate: number): Resampler {
    if (this.resampler?.fromRate !== fromRate) this.resampler = new Resampler(fromRate, toRate);
    return this.resampler;
  }
}
