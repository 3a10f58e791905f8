// Cuts a live PCM stream into the 200 ms input chunks of the micro-turn loop.
// Chunk n covers input frames [floor(n * rate * chunkMs / 1000),
// floor((n + 1) * rate * chunkMs / 1000)), so chunk boundaries never drift from
// input time even at rates where 200 ms is not a whole number of samples.

import { CHUNK_MS } from "./constants.js";
import { MediaError, checkFinite, checkSampleRate } from "./errors.js";

/** One chunk of input audio. */
export interface AudioChunk {
  /** Chunk number, from `startSeq`. */
  seq: number;
  /** Input time of the first sample: seq * chunkMs. */
  startMs: number;
  /** Length in milliseconds (chunkMs, except an unpadded last chunk). */
  durationMs: number;
  /** The samples, interleaved if more than one channel. */
  samples: Float32Array;
}

export interface ChunkFramerOptions {
  /** Sample rate of the pushed audio, Hz. */
  sampleRate: number;
  /** Interleaved channels in the pushed audio. Default 1. */
  channels?: number;
  /** Chunk length in ms. Default CHUNK_MS (200). */
  chunkMs?: number;
  /** Seq of the first chunk (e.g. when resuming a session). Default 0. */
  startSeq?: number;
}

/** Frames a live PCM stream into 200 ms (or `chunkMs`) chunks with seq and input time; see module header. */
export class ChunkFramer {
  readonly sampleRate: number;
  readonly channels: number;
  readonly chunkMs: number;
  private seq: number;
  private pending: Float32Array;
  /** Frames (per-channel samples) in `pending`. */
  private fill = 0;
  private received = 0;

  constructor(options: ChunkFramerOptions) {
    checkSampleRate(options.sampleRate);
    const channels = options.channels ?? 1;
    const chunkMs = options.chunkMs ?? CHUNK_MS;
    const startSeq = options.startSeq ?? 0;
    if (!Number.isInteger(channels) || channels < 1) {
      throw new MediaError("not_mono", `channels must be a positive integer, got ${String(channels)}`);
    }
    if (!Number.isInteger(chunkMs) || chunkMs < 1) {
      throw new MediaError("invalid_option", `chunkMs must be a positive integer, got ${String(chunkMs)}`);
    }
    if (!Number.isInteger(startSeq) || startSeq < 0) {
      throw new MediaError("invalid_option", `startSeq must be a non-negative integer, got ${String(startSeq)}`);
    }
    this.sampleRate = options.sampleRate;
    this.channels = channels;
    this.chunkMs = chunkMs;
    this.seq = startSeq;
    this.pending = new Float32Array(Math.ceil((this.sampleRate * chunkMs) / 1000) * channels);
  }

  /** Seq the next chunk will carry. */
  get nextSeq(): number {
    return this.seq;
  }

  /** Frames in chunk `seq`. */
  private chunkFrames(seq: number): number {
    const perChunk = this.sampleRate * this.chunkMs;
    return Math.floor(((seq + 1) * perChunk) / 1000) - Math.floor((seq * perChunk) / 1000);
  }

  /** Adds interleaved samples; returns every chunk they complete, in order. */
  push(samples: Float32Array): AudioChunk[] {
    if (samples.length % this.channels !== 0) {
      throw new MediaError(
        "invalid_length",
        `pushed ${samples.length} samples, not a whole number of ${this.channels}-channel frames`,
      );
    }
    checkFinite(samples, this.received);
    this.received += samples.length;
    const chunks: AudioChunk[] = [];
    const ch = this.channels;
    let pos = 0;
    while (pos < samples.length) {
      const need = this.chunkFrames(this.seq);
      const take = Math.min(need - this.fill, (samples.length - pos) / ch);
      this.pending.set(samples.subarray(pos, pos + take * ch), this.fill * ch);
      this.fill += take;
      pos += take * ch;
      if (this.fill === need) chunks.push(this.emit(need, need));
    }
    return chunks;
  }

  /**
   * Ends the stream. Returns the partial last chunk, or null if none is
   * pending. With `pad` it is zero-padded to a full chunk; without, its
   * durationMs is the exact length of what was pushed.
   */
  flush(options: { pad?: boolean } = {}): AudioChunk | null {
    if (this.fill === 0) return null;
    const need = this.chunkFrames(this.seq);
    if (options.pad === true) {
      this.pending.fill(0, this.fill * this.channels, need * this.channels);
      return this.emit(need, need);
    }
    return this.emit(this.fill, need);
  }

  private emit(frames: number, fullFrames: number): AudioChunk {
    const chunk: AudioChunk = {
      seq: this.seq,
      startMs: this.seq * this.chunkMs,
      durationMs: frames === fullFrames ? this.chunkMs : (frames * 1000) / this.sampleRate,
      samples: this.pending.slice(0, frames * this.channels),
    };
    this.seq++;
    this.fill = 0;
    return chunk;
  }
}
