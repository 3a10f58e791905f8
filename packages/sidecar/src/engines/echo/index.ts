// The echo engine: a real, deterministic, model-free engine for tests and load
// benchmarks of everything above the engine. It tokenizes like a sequence
// would (one token per word piece, the time marker included), answers each
// chunk by repeating its user text token by token (optionally paced), and
// supports rewind. Silent when the chunk has no text. With `media` it also
// takes audio and video, one token per dMel frame and per patch, so load and
// memory benchmarks can drive the media path without a model, and it speaks
// when a session asks (`audioOutput`): each token comes with a tone, 60 ms per
// character, so the audio path can be driven without a model too.
import { randomUUID } from "node:crypto";
import { setTimeout as delay } from "node:timers/promises";
import { FinishReason, Modality } from "@microturn/protocol";
import { renderChunkText } from "../chunk-text.js";
import type { AppendOptions, Engine, EngineCapabilities, EngineChunk, EngineOutput, EngineSession, EngineSessionStats, OpenSessionOptions } from "../engine.js";
import { EngineError, forcedToolRefused } from "../errors.js";

export interface EchoEngineOptions {
  /** Delay before each output token, ms; 0 answers at once. */
  tokenDelayMs?: number;
  /** Capacity of a session that asks for none, tokens. */
  defaultCapacityTokens?: number;
  maxSessions?: number;
  /** Take dMel audio and video patches too, and speak when a session asks (text only by default). */
  media?: boolean;
}

/** Sample rate of the echo engine's speech. */
export const ECHO_AUDIO_RATE_HZ = 16_000;
/** Speech per character of a token, ms (the text timeline's pace, turn-history.ts). */
const ECHO_MS_PER_CHAR = 60;

/** A tone for `token`, continuing the phase where the previous one ended: PCM16 little-endian. */
class ToneVoice {
  private phase = 0;

  speak(token: string): Uint8Array {
    const samples = Math.round((token.length * ECHO_MS_PER_CHAR * ECHO_AUDIO_RATE_HZ) / 1000);
    const pcm = new Uint8Array(samples * 2);
    const view = new DataView(pcm.buffer);
    // A pitch per token, so distinct words sound distinct.
    const code = token.trim().charCodeAt(0) || 0;
    const hz = 220 * (1 + (code % 8) / 8);
    const step = (2 * Math.PI * hz) / ECHO_AUDIO_RATE_HZ;
    for (let i = 0; i < samples; i++) {
      view.setInt16(i * 2, Math.round(8000 * Math.sin(this.phase)), true);
      this.phase = (this.phase + step) % (2 * Math.PI);
    }
    return pcm;
  }
}

/** What a dMel frame or a patch occupies in an echo sequence: one shared placeholder token. */
const MEDIA_TOKEN = "";

/** Word pieces with their leading whitespace, so joining them gives the text back. */
export function echoTokens(text: string): string[] {
  return text.match(/\s*\S+|\s+$/g) ?? [];
}

/** Waits `ms`, or less when `signal` aborts (Node's timer drops its abort listener either way). */
const sleep = (ms: number, signal?: AbortSignal): Promise<void> => delay(ms, undefined, signal ? { signal } : {}).catch(() => undefined);

class EchoSession implements EngineSession {
  private readonly tokens: string[] = [];
  private readonly startTokens: number;
  private closed = false;
  private inFlight = false;
  private appends = 0;
  private lastAppendMs = 0;

  constructor(
    readonly id: string,
    private readonly capacity: number,
    private readonly tokenDelayMs: number,
    private readonly media: boolean,
    systemPrompt: string,
    private readonly onClose: (id: string) => void,
    private readonly voice: ToneVoice | undefined,
  ) {
    this.tokens.push(...echoTokens(systemPrompt));
    this.startTokens = this.tokens.length;
  }

  get positionTokens(): number {
    return this.tokens.length;
  }

  /** The whole sequence as text, for tests. */
  get text(): string {
    return this.tokens.join("");
  }

  stats(): EngineSessionStats {
    return { positionTokens: this.tokens.length, appends: this.appends, lastAppendMs: this.lastAppendMs, capacityTokens: this.capacity };
  }

  async *append(chunk: EngineChunk, options: AppendOptions): AsyncGenerator<EngineOutput> {
    this.assertUsable();
    const mediaTokens = (chunk.audio?.frames ?? 0) + (chunk.video ?? []).reduce((n, grid) => n + grid.rows * grid.cols, 0);
    if (mediaTokens > 0 && !this.media) {
      throw new EngineError("unsupported_modality", "the echo engine takes text only (open it with media to take audio and video)", { sessionId: this.id });
    }
    if (!Number.isInteger(options.maxOutputTokens) || options.maxOutputTokens < 0) {
      throw new EngineError("invalid_argument", `maxOutputTokens must be a non-negative integer, got ${options.maxOutputTokens}`, { sessionId: this.id });
    }
    if (options.forceTool) throw forcedToolRefused("echo", options.forceTool.name, this.id);
    if (options.signal?.aborted) throw new EngineError("aborted", "append aborted before it started", { sessionId: this.id });
    const input = echoTokens(renderChunkText(chunk));
    for (let i = 0; i < mediaTokens; i++) input.push(MEDIA_TOKEN);
    if (this.tokens.length + input.length + options.maxOutputTokens > this.capacity) {
      throw new EngineError("too_large", `chunk of ${input.length} tokens does not fit: session at ${this.tokens.length} of ${this.capacity}`, { sessionId: this.id });
    }
    this.inFlight = true;
    try {
      const started = performance.now();
      this.tokens.push(...input);
      const inputEndTokens = this.tokens.length;
      const appendMs = performance.now() - started;
      this.appends++;
      this.lastAppendMs = appendMs;
      const reply = echoTokens(chunk.text ?? "").slice(0, options.maxOutputTokens);
      let finishReason = reply.length === 0 ? FinishReason.FINISH_REASON_SILENT : FinishReason.FINISH_REASON_LENGTH;
      let said = "";
      for (const token of reply) {
        if (this.tokenDelayMs > 0) await sleep(this.tokenDelayMs, options.signal);
        if (this.closed || options.signal?.aborted) {
          finishReason = FinishReason.FINISH_REASON_ABORT;
          break;
        }
        if (options.stop?.some((s) => s && (said + token).includes(s))) {
          finishReason = FinishReason.FINISH_REASON_STOP;
          break;
        }
        said += token;
        this.tokens.push(token);
        yield this.voice
          ? { type: "delta", text: token, positionTokens: this.tokens.length, audioPcm16: this.voice.speak(token), audioSampleRateHz: ECHO_AUDIO_RATE_HZ }
          : { type: "delta", text: token, positionTokens: this.tokens.length };
      }
      yield {
        type: "done",
        done: {
          finishReason,
          positionTokens: this.tokens.length,
          inputEndTokens,
          inputTokens: input.length,
          outputTokens: this.tokens.length - inputEndTokens,
          appendMs,
          turnMs: performance.now() - started,
        },
      };
    } finally {
      this.inFlight = false;
    }
  }

  async rewind(positionTokens: number, signal?: AbortSignal): Promise<number> {
    this.assertUsable();
    if (signal?.aborted) throw new EngineError("aborted", "rewind aborted", { sessionId: this.id });
    if (!Number.isInteger(positionTokens)) {
      throw new EngineError("invalid_argument", `rewind position must be an integer, got ${positionTokens}`, { sessionId: this.id });
    }
    if (positionTokens < this.startTokens || positionTokens > this.tokens.length) {
      throw new EngineError("rewind_out_of_range", `rewind to ${positionTokens} outside [${this.startTokens}, ${this.tokens.length}]`, { sessionId: this.id });
    }
    this.tokens.length = positionTokens;
    return positionTokens;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.onClose(this.id);
  }

  private assertUsable(): void {
    if (this.closed) throw new EngineError("session_closed", `session ${this.id} is closed`, { sessionId: this.id });
    if (this.inFlight) throw new EngineError("busy", `session ${this.id} already has an append in flight`, { sessionId: this.id });
  }
}

export class EchoEngine implements Engine {
  readonly capabilities: EngineCapabilities;
  private readonly sessions = new Map<string, EchoSession>();
  private disposed = false;

  constructor(private readonly options: EchoEngineOptions = {}) {
    const media = options.media ? [Modality.MODALITY_AUDIO, Modality.MODALITY_VIDEO] : [];
    this.capabilities = {
      engine: "echo",
      modelId: "echo",
      inputModalities: [Modality.MODALITY_TEXT, ...media],
      outputModalities: options.media ? [Modality.MODALITY_TEXT, Modality.MODALITY_AUDIO] : [Modality.MODALITY_TEXT],
      supportsRewind: true,
      maxContextTokens: 1 << 20,
      randomWeights: false,
    };
  }

  async openSession(options: OpenSessionOptions = {}): Promise<EngineSession> {
    if (this.disposed) throw new EngineError("unavailable", "engine disposed");
    if (options.signal?.aborted) throw new EngineError("aborted", "open aborted");
    if (this.sessions.size >= (this.options.maxSessions ?? Infinity)) throw new EngineError("unavailable", "session limit reached");
    const id = options.sessionId || randomUUID();
    if (this.sessions.has(id)) throw new EngineError("invalid_argument", `session ${id} is already open`, { sessionId: id });
    if (options.audioOutput && !this.options.media) {
      throw new EngineError("unsupported_modality", "the echo engine speaks only when created with media", { sessionId: id });
    }
    const capacity = options.capacityTokens || this.options.defaultCapacityTokens || 65_536;
    const session = new EchoSession(
      id,
      capacity,
      this.options.tokenDelayMs ?? 0,
      this.options.media ?? false,
      options.systemPrompt ?? "",
      (closed) => this.sessions.delete(closed),
      options.audioOutput ? new ToneVoice() : undefined,
    );
    this.sessions.set(id, session);
    return session;
  }

  /** A session by id, or EngineError("unknown_session"). */
  session(id: string): EngineSession {
    const session = this.sessions.get(id);
    if (!session) throw new EngineError("unknown_session", `no open session ${id}`, { sessionId: id });
    return session;
  }

  async health(): Promise<{ serving: boolean; activeSessions: number }> {
    if (this.disposed) throw new EngineError("unavailable", "engine disposed");
    return { serving: true, activeSessions: this.sessions.size };
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    await Promise.all([...this.sessions.values()].map((s) => s.close()));
  }
}

export async function createEchoEngine(options: EchoEngineOptions = {}): Promise<EchoEngine> {
  return new EchoEngine(options);
}
