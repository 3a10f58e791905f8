// Frames pushed input (text, 16 kHz PCM, video frames) into InputChunks with
// contiguous seq and startMs. Pure: the session decides when a chunk is cut
// (timer or manual flush), which keeps framing deterministic in tests.
import { MAX_MESSAGE_BYTES, type InputChunk, type VideoFrame } from "@microturn/protocol";
import { InvalidInputError } from "../core/session-errors.js";
import { int16Bytes } from "./pcm.js";

export const INPUT_SAMPLE_RATE_HZ = 16_000;

/** Bytes a frame costs on the wire beyond its RGB (its fields and their tags), rounded up. */
const FRAME_OVERHEAD_BYTES = 32;

/** What text counts against a chunk's bound: 3 bytes a UTF-16 unit, UTF-8's worst. */
export const textCost = (text: string): number => text.length * 3;

/** What a video frame counts against a chunk's bound: its RGB and the encoding around it. */
export const frameCost = (rgbBytes: number): number => rgbBytes + FRAME_OVERHEAD_BYTES;

/** Bytes fields are typed as Node Buffers by codegen, but the codec only needs a Uint8Array. */
export function wireBytes(bytes: Uint8Array): Buffer {
  return bytes as unknown as Buffer;
}

export class InputFramer {
  readonly chunkDurationMs: number;
  readonly samplesPerChunk: number;
  private readonly maxPendingSamples: number;
  /**
   * What one chunk's text and video may add up to: a message's limit less its
   * audio (one chunk's worth) and 64 KiB for the encoding around the parts.
   */
  readonly maxContentBytes: number;
  private seq = 0;
  private text: string[] = [];
  private audio: Int16Array[] = [];
  private audioSamples = 0;
  private frames: VideoFrame[] = [];
  /** What the text and frames waiting for the next cut count against the bound (textCost, frameCost). */
  private contentBytes = 0;
  private userSpeaking = false;
  private toolChoice = "";

  constructor(options: { chunkDurationMs?: number; maxPendingAudioMs?: number } = {}) {
    this.chunkDurationMs = options.chunkDurationMs ?? 200;
    this.samplesPerChunk = (INPUT_SAMPLE_RATE_HZ * this.chunkDurationMs) / 1000;
    this.maxPendingSamples = ((options.maxPendingAudioMs ?? 60_000) * INPUT_SAMPLE_RATE_HZ) / 1000;
    this.maxContentBytes = MAX_MESSAGE_BYTES - this.samplesPerChunk * 2 - 64 * 1024;
  }

  /** Seq the next cut chunk will carry. */
  get nextSeq(): number {
    return this.seq;
  }

  /** Audio waiting for later chunks, in ms. */
  get pendingAudioMs(): number {
    return (this.audioSamples * 1000) / INPUT_SAMPLE_RATE_HZ;
  }

  /** True when text, frames or a tool choice wait for the next cut. */
  hasPendingContent(): boolean {
    return this.text.length > 0 || this.frames.length > 0 || this.toolChoice !== "";
  }

  /** The model must call this tool in the next chunk (InputChunk.tool_choice). */
  setToolChoice(name: string): void {
    this.toolChoice = name;
  }

  /**
   * Throws when `bytes` more of text or video would make the next chunk larger
   * than a message may be (MAX_MESSAGE_BYTES: the stream would end on it).
   */
  assertRoomForContent(bytes: number, what: string): void {
    if (this.contentBytes + bytes > this.maxContentBytes) {
      const mib = (n: number) => (n / 1024 / 1024).toFixed(1);
      throw new InvalidInputError(
        `${what} (${mib(bytes)} MiB) would make chunk ${this.seq} ${mib(this.contentBytes + bytes)} MiB, over the ${mib(this.maxContentBytes)} MiB ` +
          "a chunk's text and video may take on the wire: send fewer or smaller frames per chunk (two 1080p RGB frames fit)",
      );
    }
  }

  addText(text: string): void {
    const cost = textCost(text);
    this.assertRoomForContent(cost, "text");
    this.text.push(text);
    this.contentBytes += cost;
  }

  /** Throws when `samples16k` more samples would pass the pending-audio limit. */
  assertRoomForAudio(samples16k: number): void {
    if (this.audioSamples + samples16k > this.maxPendingSamples) {
      throw new InvalidInputError(
        `more than ${(this.maxPendingSamples * 1000) / INPUT_SAMPLE_RATE_HZ} ms of audio is waiting to be framed; ` +
          "send audio no faster than the chunk clock, or flush chunks",
      );
    }
  }

  addAudio(samples16k: Int16Array): void {
    this.assertRoomForAudio(samples16k.length);
    if (samples16k.length === 0) return;
    this.audio.push(samples16k.slice());
    this.audioSamples += samples16k.length;
  }

  addFrame(frame: VideoFrame): void {
    const cost = frameCost(frame.rgb.length);
    this.assertRoomForContent(cost, `a ${frame.widthPx}x${frame.heightPx} video frame`);
    this.contentBytes += cost;
    this.frames.push({ ...frame, offsetMs: Math.min(Math.max(0, Math.round(frame.offsetMs)), this.chunkDurationMs - 1) });
  }

  setUserSpeaking(speaking: boolean): void {
    this.userSpeaking = speaking;
  }

  /** Cuts the current chunk: all text and frames, up to one chunk of audio (the rest carries over). */
  cut(): InputChunk {
    const seq = this.seq++;
    const chunk: InputChunk = {
      seq,
      startMs: seq * this.chunkDurationMs,
      durationMs: this.chunkDurationMs,
      text: this.text.join(""),
      pcm: undefined,
      dmel: undefined,
      frames: this.frames,
      patches: [],
      userSpeaking: this.userSpeaking,
      toolChoice: this.toolChoice,
    };
    const audio = this.takeAudio(this.samplesPerChunk);
    if (audio.length > 0) {
      chunk.pcm = { sampleRateHz: INPUT_SAMPLE_RATE_HZ, channels: 1, pcm16: wireBytes(int16Bytes(audio)) };
    }
    this.text = [];
    this.frames = [];
    this.contentBytes = 0;
    this.toolChoice = "";
    return chunk;
  }

  // Text and video join the chunk too, so this framer (not media's audio-only ChunkFramer) cuts chunks.
  private takeAudio(limit: number): Int16Array {
    const count = Math.min(limit, this.audioSamples);
    const out = new Int16Array(count);
    let filled = 0;
    while (filled < count) {
      const head = this.audio[0]!;
      const take = Math.min(head.length, count - filled);
      out.set(head.subarray(0, take), filled);
      filled += take;
      if (take === head.length) this.audio.shift();
      else this.audio[0] = head.subarray(take);
    }
    this.audioSamples -= count;
    return out;
  }
}
