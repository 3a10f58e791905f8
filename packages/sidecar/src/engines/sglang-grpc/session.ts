// One StreamingSession session seen from the sidecar. Positions come from the
// server's answers, except after an append that ended without `done` (see
// settleUnfinished); the in-flight guard saves a round trip for "busy".
import type { AppendResponse, StreamingSessionClient } from "@microturn/protocol";
import type { AppendOptions, EngineChunk, EngineOutput, EngineSession, EngineSessionStats } from "../engine.js";
import { EngineError, forcedToolRefused, type EngineErrorCode } from "../errors.js";
import { deadlineIn, unary } from "./call.js";
import { toEngineError } from "./errors.js";

export interface GrpcSessionInit {
  client: StreamingSessionClient;
  id: string;
  positionTokens: number;
  capacityTokens: number;
  timeoutMs: number;
  acceptsAudio: boolean;
  acceptsVideo: boolean;
  /** The server's capabilities.supportsRewind. */
  supportsRewind: boolean;
  onClose(id: string): void;
}

/** Codes of an append the server turned away before taking its input (when no delta came before them). */
const REFUSED_BEFORE_INPUT: ReadonlySet<EngineErrorCode> = new Set([
  "unknown_session", "session_closed", "busy", "too_large", "unsupported_modality", "invalid_argument",
]);

export class SglangGrpcSession implements EngineSession {
  readonly id: string;
  private position: number;
  private capacity: number;
  private closed = false;
  private inFlight = false;
  private appends = 0;
  private lastAppendMs = 0;
  /** The server may hold more than `position` (see settleUnfinished): a rewind to `position` is not a no-op. */
  private positionUnconfirmed = false;

  constructor(private readonly init: GrpcSessionInit) {
    this.id = init.id;
    this.position = init.positionTokens;
    this.capacity = init.capacityTokens;
  }

  get positionTokens(): number {
    return this.position;
  }

  stats(): EngineSessionStats {
    return { positionTokens: this.position, appends: this.appends, lastAppendMs: this.lastAppendMs, capacityTokens: this.capacity };
  }

  async *append(chunk: EngineChunk, options: AppendOptions): AsyncGenerator<EngineOutput> {
    this.assertUsable();
    if ((chunk.audio && chunk.audio.frames > 0 && !this.init.acceptsAudio) || (chunk.video?.length && !this.init.acceptsVideo)) {
      throw new EngineError("unsupported_modality", "the engine does not accept this chunk's audio or video", { sessionId: this.id });
    }
    if (!Number.isInteger(options.maxOutputTokens) || options.maxOutputTokens < 0 || options.maxOutputTokens > 0xffffffff) {
      throw new EngineError("invalid_argument", `maxOutputTokens must be a non-negative integer, got ${options.maxOutputTokens}`, { sessionId: this.id });
    }
    if (options.forceTool) throw forcedToolRefused("sglang-grpc", options.forceTool.name, this.id);
    if (options.signal?.aborted) throw new EngineError("aborted", "append aborted before it started", { sessionId: this.id });
    this.inFlight = true;
    const before = this.position;
    const call = this.init.client.append(
      {
        sessionId: this.id,
        seq: chunk.seq,
        startMs: chunk.startMs,
        durationMs: chunk.durationMs,
        text: chunk.text ?? "",
        audio: chunk.audio,
        video: chunk.video ?? [],
        context: chunk.context ?? [],
        maxOutputTokens: options.maxOutputTokens,
        stop: options.stop ?? [],
        temperature: options.temperature ?? 0,
      },
      { deadline: deadlineIn(this.init.timeoutMs) },
    );
    const onAbort = (): void => call.cancel();
    options.signal?.addEventListener("abort", onAbort, { once: true });
    let sawDelta = false;
    let sawDone = false;
    let refused = false;
    try {
      for await (const message of call as AsyncIterable<AppendResponse>) {
        const event = message.event;
        // `done` is final: anything after it (a server bug) is read to the stream's end and ignored.
        if (sawDone) continue;
        if (event?.$case === "delta") {
          sawDelta = true;
          this.position = event.value.positionTokens;
          const audio = event.value.audio;
          yield {
            type: "delta",
            text: event.value.text,
            positionTokens: event.value.positionTokens,
            ...(audio && audio.pcm16.length > 0 ? { audioPcm16: audio.pcm16, audioSampleRateHz: audio.sampleRateHz } : {}),
          };
        } else if (event?.$case === "done") {
          const d = event.value;
          sawDone = true;
          this.position = d.positionTokens;
          this.positionUnconfirmed = false;
          if (d.capacityTokens > 0) this.capacity = d.capacityTokens;
          this.appends++;
          this.lastAppendMs = d.appendMs;
          yield {
            type: "done",
            done: {
              finishReason: d.finishReason,
              positionTokens: d.positionTokens,
              inputEndTokens: d.inputEndTokens,
              inputTokens: d.inputTokens,
              outputTokens: d.outputTokens,
              appendMs: d.appendMs,
              turnMs: d.turnMs,
            },
          };
        }
      }
    } catch (error) {
      const failure = toEngineError(error, "append", this.id);
      refused = !sawDelta && REFUSED_BEFORE_INPUT.has(failure.code);
      throw failure;
    } finally {
      options.signal?.removeEventListener("abort", onAbort);
      this.inFlight = false;
      if (!sawDone) {
        // The consumer stopped early: stop the server's turn too.
        call.cancel();
        this.settleUnfinished(before, refused);
      }
    }
    if (!sawDone) {
      throw new EngineError("internal", "sglang-grpc append: the stream ended without `done`", { sessionId: this.id });
    }
  }

  async rewind(positionTokens: number, signal?: AbortSignal): Promise<number> {
    this.assertUsable();
    if (!Number.isInteger(positionTokens) || positionTokens < 0) {
      throw new EngineError("invalid_argument", `rewind position must be a non-negative integer, got ${positionTokens}`, { sessionId: this.id });
    }
    // Nothing to take back: answered here, as on every engine (a server without rewind would refuse even this,
    // and a turn retried before any output rewinds to where it began).
    if (positionTokens === this.position && !this.positionUnconfirmed) return this.position;
    const client = this.init.client;
    const response = await unary(client.rewind.bind(client), { sessionId: this.id, positionTokens }, {
      operation: "rewind", timeoutMs: this.init.timeoutMs, signal, sessionId: this.id,
    });
    this.position = response.positionTokens;
    this.positionUnconfirmed = false;
    return response.positionTokens;
  }

  /**
   * An append that ended without `done` (cancelled, past its deadline, failed)
   * says nothing of what the server kept, and no call asks it. The servicer
   * inside SGLang (sglang_session_servicer.py) drops such a turn whole, input
   * included: its sequence stays where it was before the append (a rewind the
   * turn carried is carried again, so that is where the last rewind left it).
   * That is the position taken here, not the last delta's. The CPU reference
   * servicer (engine_servicer.py) keeps what the turn appended instead, so
   * unless the server refused the append before taking its input, the next
   * rewind goes to the server even to this position: either server then
   * stands where the turn began. The next `done` reports the position anyway.
   */
  private settleUnfinished(before: number, refused: boolean): void {
    this.position = before;
    if (!refused && this.init.supportsRewind) this.positionUnconfirmed = true;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.init.onClose(this.id);
    const client = this.init.client;
    try {
      await unary(client.closeSession.bind(client), { sessionId: this.id }, { operation: "close", timeoutMs: this.init.timeoutMs, sessionId: this.id });
    } catch (error) {
      // Already gone on the server (idle timeout, restart): closed either way.
      if (!(EngineError.isInstance(error) && error.code === "unknown_session")) throw error;
    }
  }

  private assertUsable(): void {
    if (this.closed) throw new EngineError("session_closed", `session ${this.id} is closed`, { sessionId: this.id });
    if (this.inFlight) throw new EngineError("busy", `session ${this.id} already has an append in flight`, { sessionId: this.id });
  }
}
