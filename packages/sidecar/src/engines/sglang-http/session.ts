// One engine session on one SGLang streaming session. Positions come from the
// server's meta_info (prompt_tokens = the whole sequence before this turn's
// output, completion_tokens = its output so far), so they count SGLang's
// tokens, not ours. An aborted turn leaves the position where it was: SGLang
// rolls a streaming session back to its last finished request.
import { FinishReason } from "@microturn/protocol";
import type { StreamingSession } from "@microturn/sdk";
import { followSignal } from "../../abort.js";
import { renderChunkText } from "../chunk-text.js";
import type { AppendOptions, AppendResult, EngineChunk, EngineOutput, EngineSession, EngineSessionStats } from "../engine.js";
import { EngineError, forcedToolRefused } from "../errors.js";
import { toEngineError } from "./errors.js";

/** A micro-turn's deadline when the engine sets none, ms (the client's progress timeout). */
export const DEFAULT_TURN_TIMEOUT_MS = 60_000;

export class SglangHttpSession implements EngineSession {
  readonly id: string;
  private readonly stream: StreamingSession;
  private readonly capacityTokens: number;
  private readonly onClose: () => void;
  private position = 0;
  private appends = 0;
  private lastAppendMs = 0;
  private inFlight = false;
  private closed = false;

  constructor(
    stream: StreamingSession,
    capacityTokens: number,
    onClose: () => void,
    /** Longest a micro-turn may take from request to result, ms. */
    private readonly turnTimeoutMs: number = DEFAULT_TURN_TIMEOUT_MS,
  ) {
    this.stream = stream;
    this.id = stream.id;
    this.capacityTokens = capacityTokens;
    this.onClose = onClose;
  }

  get positionTokens(): number {
    return this.position;
  }

  async *append(chunk: EngineChunk, options: AppendOptions): AsyncGenerator<EngineOutput, void, undefined> {
    if (this.closed) throw new EngineError("session_closed", `sglang-http: session ${this.id} is closed.`, { sessionId: this.id });
    if (this.inFlight) throw new EngineError("busy", `sglang-http: session ${this.id} already has an append in flight.`, { sessionId: this.id });
    this.validate(chunk, options);
    this.inFlight = true;
    const started = performance.now();
    let firstEventMs: number | undefined;
    let visibleText = "";
    // The turn as a whole has a deadline: a server that keeps sending (pings, say) but never finishes cannot hold the session.
    const { controller: turn, release } = followSignal(options.signal);
    const deadline = setTimeout(() => turn.abort(), this.turnTimeoutMs);
    try {
      const text = renderChunkText(chunk);
      const sampling = {
        max_new_tokens: options.maxOutputTokens,
        ...(options.stop && options.stop.length > 0 ? { stop: options.stop } : {}),
        // Greedy unless asked, as every engine is: SGLang's own default (1.0) would sample, turn by turn differently.
        temperature: options.temperature ?? 0,
      };
      for await (const delta of this.stream.append(text, sampling, { signal: turn.signal })) {
        firstEventMs ??= performance.now() - started;
        const meta = delta.metaInfo;
        const position = meta.prompt_tokens + meta.completion_tokens;
        if (delta.text !== "") {
          visibleText += delta.text;
          yield { type: "delta", text: delta.text, positionTokens: position };
        }
        if (delta.finishReason) {
          const turnMs = performance.now() - started;
          const result: AppendResult = {
            finishReason: finishReasonOf(delta.finishReason.type, visibleText),
            positionTokens: position,
            inputEndTokens: meta.prompt_tokens,
            inputTokens: meta.prompt_tokens - this.position,
            outputTokens: meta.completion_tokens,
            appendMs: firstEventMs,
            turnMs,
          };
          this.position = position;
          this.appends += 1;
          this.lastAppendMs = turnMs;
          yield { type: "done", done: result };
        }
      }
    } catch (error) {
      if (turn.signal.aborted && !options.signal?.aborted) {
        throw new EngineError("unavailable", `sglang-http: micro-turn ${chunk.seq} did not finish within ${this.turnTimeoutMs} ms.`, { sessionId: this.id, cause: error });
      }
      throw toEngineError(error, this.id);
    } finally {
      clearTimeout(deadline);
      release();
      this.inFlight = false;
    }
  }

  /**
   * Puts the system prompt in the sequence before any chunk (one request that
   * generates nothing), so the session's position counts it from the start: the
   * context window then knows how much of the sequence is prompt.
   */
  async prefill(systemPrompt: string, signal?: AbortSignal): Promise<void> {
    try {
      for await (const delta of this.stream.append(systemPrompt, { max_new_tokens: 0 }, signal ? { signal } : {})) {
        if (delta.finishReason) this.position = delta.metaInfo.prompt_tokens + delta.metaInfo.completion_tokens;
      }
    } catch (error) {
      throw toEngineError(error, this.id);
    }
  }

  async rewind(positionTokens: number): Promise<number> {
    if (this.closed) throw new EngineError("session_closed", `sglang-http: session ${this.id} is closed.`, { sessionId: this.id });
    if (this.inFlight) throw new EngineError("busy", `sglang-http: session ${this.id} has an append in flight.`, { sessionId: this.id });
    if (!Number.isInteger(positionTokens) || positionTokens < 0 || positionTokens > this.position) {
      throw new EngineError(
        "rewind_out_of_range",
        `sglang-http: rewind target ${positionTokens} is outside [0, ${this.position}].`,
        { sessionId: this.id },
      );
    }
    if (positionTokens === this.position) return this.position;
    throw new EngineError(
      "invalid_argument",
      "sglang-http: stock SGLang streaming sessions are append-only (no offset or replace); " +
        "use the sglang-grpc engine (patched SGLang) or the embedded engine for rewind.",
      { sessionId: this.id },
    );
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.onClose();
    try {
      await this.stream.close();
    } catch (error) {
      throw toEngineError(error, this.id);
    }
  }

  stats(): EngineSessionStats {
    return {
      positionTokens: this.position,
      appends: this.appends,
      lastAppendMs: this.lastAppendMs,
      capacityTokens: this.capacityTokens,
    };
  }

  private validate(chunk: EngineChunk, options: AppendOptions): void {
    const sessionId = this.id;
    if ((chunk.audio && (chunk.audio.frames > 0 || chunk.audio.codes.length > 0)) || (chunk.video && chunk.video.length > 0)) {
      throw new EngineError("unsupported_modality", "sglang-http: this engine takes text only; the chunk carries audio or video.", {
        sessionId,
      });
    }
    if (!Number.isInteger(options.maxOutputTokens) || options.maxOutputTokens < 0) {
      throw new EngineError("invalid_argument", `sglang-http: maxOutputTokens must be an integer >= 0, got ${options.maxOutputTokens}.`, {
        sessionId,
      });
    }
    if (options.temperature !== undefined && !(options.temperature >= 0)) {
      throw new EngineError("invalid_argument", `sglang-http: temperature must be >= 0, got ${options.temperature}.`, { sessionId });
    }
    if (options.forceTool) throw forcedToolRefused("sglang-http", options.forceTool.name, sessionId);
  }
}

function finishReasonOf(type: "stop" | "length" | "abort", visibleText: string): FinishReason {
  if (type === "length") return FinishReason.FINISH_REASON_LENGTH;
  if (type === "abort") return FinishReason.FINISH_REASON_ABORT;
  return visibleText === "" ? FinishReason.FINISH_REASON_SILENT : FinishReason.FINISH_REASON_STOP;
}
