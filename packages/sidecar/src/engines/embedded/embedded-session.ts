// One streaming session on llama.cpp: its own context (own KV cache) with one
// sequence. Each append evaluates only the chunk's new tokens at the end of
// the sequence, then samples output token by token into the same sequence.
import { FinishReason } from "@microturn/protocol";
import type { LlamaContext, LlamaContextSequence, LlamaModel, Token } from "node-llama-cpp";
import type { AppendOptions, AppendResult, EngineChunk, EngineOutput, EngineSession, EngineSessionStats } from "../engine.js";
import { EngineError } from "../errors.js";
import { forcedCallMaxTokens, forcedToolCall } from "./forced-tool-call.js";
import { OutputText } from "./output-text.js";
import { renderChunkText } from "../chunk-text.js";

export interface EmbeddedSessionInit {
  id: string;
  model: LlamaModel;
  context: LlamaContext;
  /** Tokens before the first chunk (BOS and system prompt); rewinding below them is refused. */
  startTokens: number;
  /** Tokens the session may hold in all. */
  capacityTokens: number;
  seed?: number;
  onClose(id: string): void;
}

export class EmbeddedSession implements EngineSession {
  readonly id: string;
  private readonly model: LlamaModel;
  private readonly context: LlamaContext;
  private readonly sequence: LlamaContextSequence;
  private readonly startTokens: number;
  private readonly capacity: number;
  private readonly seed: number | undefined;
  private readonly onClose: (id: string) => void;
  private closed = false;
  private inFlight: Promise<void> | undefined;
  private appends = 0;
  private lastAppendMs = 0;
  private steps = 0;

  constructor(init: EmbeddedSessionInit) {
    this.id = init.id;
    this.model = init.model;
    this.context = init.context;
    // llama.cpp's default when a sequence is full is to erase its beginning (the system prompt and every position the
    // turn history holds). Appends are checked to fit first, so reaching this is a bug; it fails the turn instead.
    this.sequence = init.context.getSequence({
      contextShift: {
        strategy: () => {
          throw new EngineError("too_large", `session ${init.id}: the sequence is full (${this.capacityTokens} tokens)`, { sessionId: init.id });
        },
      },
    });
    this.startTokens = init.startTokens;
    this.capacity = init.capacityTokens;
    this.seed = init.seed;
    this.onClose = init.onClose;
  }

  /** Evaluates the session's opening tokens (BOS, system prompt). */
  async prime(tokens: Token[]): Promise<void> {
    await this.sequence.evaluateWithoutGeneratingNewTokens(tokens);
  }

  get positionTokens(): number {
    return this.sequence.disposed ? 0 : this.sequence.nextTokenIndex;
  }

  /** Tokens the sequence may hold: what was asked for, within what llama.cpp can hold (one cell less than the context). */
  get capacityTokens(): number {
    return Math.min(this.capacity, this.context.contextSize - 1);
  }

  /** Tokens llama.cpp has evaluated into this sequence in total; lets tests prove nothing was re-evaluated. */
  get evaluatedTokens(): number {
    const meter = this.sequence.tokenMeter;
    return meter.usedInputTokens + meter.usedOutputTokens;
  }

  /** The llama.cpp sequence itself, for benchmarks that compare the engine with raw evaluation. */
  get llamaSequence(): LlamaContextSequence {
    return this.sequence;
  }

  /** The sequence's tokens, for tests and debugging. */
  get contextTokens(): readonly Token[] {
    return this.sequence.contextTokens;
  }

  stats(): EngineSessionStats {
    return {
      positionTokens: this.positionTokens,
      appends: this.appends,
      lastAppendMs: this.lastAppendMs,
      capacityTokens: this.capacityTokens,
    };
  }

  async *append(chunk: EngineChunk, options: AppendOptions): AsyncGenerator<EngineOutput> {
    this.assertUsable();
    validateAppend(chunk, options, this.id);
    if (options.signal?.aborted) throw new EngineError("aborted", "append aborted before it started", { sessionId: this.id });
    const tokens = this.model.tokenize(renderChunkText(chunk), false);
    const position = this.positionTokens;
    // A forced tool call writes its own output: its markup and up to MAX_ARGUMENT_TOKENS of arguments.
    const output = options.forceTool ? forcedCallMaxTokens(this.model, options.forceTool.name) : options.maxOutputTokens;
    if (position + tokens.length + output > this.capacityTokens) {
      throw new EngineError(
        "too_large",
        `chunk of ${tokens.length} tokens + ${output} output tokens does not fit: ` + `session at ${position} of ${this.capacityTokens} tokens`,
        { sessionId: this.id },
      );
    }
    let release!: () => void;
    this.inFlight = new Promise((resolve) => (release = resolve));
    try {
      yield* this.runTurn(tokens, options);
    } catch (cause) {
      if (EngineError.isInstance(cause)) throw cause;
      throw new EngineError("internal", `llama.cpp failed during the turn: ${(cause as Error).message}`, { sessionId: this.id, cause });
    } finally {
      this.inFlight = undefined;
      release();
    }
  }

  private async *runTurn(tokens: Token[], options: AppendOptions): AsyncGenerator<EngineOutput> {
    const started = performance.now();
    const inputTokens = tokens.length;
    const budget = options.maxOutputTokens;
    let next: Token | undefined;
    const temperature = options.temperature ?? 0;
    if (options.forceTool) {
      yield* this.forcedToolTurn(tokens, options.forceTool, temperature, started);
      return;
    }
    if (budget === 0) await this.sequence.evaluateWithoutGeneratingNewTokens(tokens);
    else next = await this.evaluateAndSample(tokens, temperature);
    const appendMs = performance.now() - started;
    const inputEndTokens = this.positionTokens;
    this.appends++;
    this.lastAppendMs = appendMs;

    const output = new OutputText((t) => this.model.detokenize(t), options.stop ?? []);
    let finishReason = FinishReason.FINISH_REASON_LENGTH;
    // Each sampled token is evaluated into the sequence before its text is
    // emitted, so a delta's position is always a valid rewind point.
    while (next !== undefined) {
      if (this.closed || options.signal?.aborted) {
        finishReason = FinishReason.FINISH_REASON_ABORT;
        break;
      }
      if (this.model.isEogToken(next)) {
        // End-of-turn is sampled but not kept: the next chunk's time marker
        // opens the next turn, and no text between two markers is silence.
        finishReason = output.tokens.length === 0 ? FinishReason.FINISH_REASON_SILENT : FinishReason.FINISH_REASON_STOP;
        break;
      }
      output.push(next);
      const last = output.tokens.length >= budget;
      if (last) {
        await this.sequence.evaluateWithoutGeneratingNewTokens([next]);
        next = undefined;
      } else {
        next = await this.evaluateAndSample([next], temperature);
      }
      const { text, stopAt } = output.advance();
      if (text) yield { type: "delta", text, positionTokens: inputEndTokens + output.emittedTokens };
      if (stopAt !== undefined) {
        finishReason = FinishReason.FINISH_REASON_STOP;
        break;
      }
    }
    if (finishReason === FinishReason.FINISH_REASON_LENGTH) {
      const text = output.flush();
      if (text) yield { type: "delta", text, positionTokens: inputEndTokens + output.emittedTokens };
    }
    // Drop held-back tokens (a stop string, or output after an abort) so the sequence holds what was emitted.
    const keepEnd = inputEndTokens + output.emittedTokens;
    if (this.positionTokens > keepEnd) await this.sequence.eraseContextTokenRanges([{ start: keepEnd, end: this.positionTokens }]);
    const done: AppendResult = {
      finishReason,
      positionTokens: this.positionTokens,
      inputEndTokens,
      inputTokens,
      outputTokens: output.emittedTokens,
      appendMs,
      turnMs: performance.now() - started,
    };
    yield { type: "done", done };
  }

  /** A turn whose output is the tool call the client asked for (forced-tool-call.ts). */
  private async *forcedToolTurn(tokens: Token[], tool: { name: string; parametersJson: string }, temperature: number, started: number): AsyncGenerator<EngineOutput> {
    await this.sequence.evaluateWithoutGeneratingNewTokens(tokens);
    const appendMs = performance.now() - started;
    const inputEndTokens = this.positionTokens;
    this.appends++;
    this.lastAppendMs = appendMs;
    let text: string;
    try {
      text = await forcedToolCall(this.model, this.sequence, { ...tool, temperature, sessionId: this.id });
    } catch (err) {
      // The input stays appended, as in any turn; only the call is dropped.
      if (EngineError.isInstance(err)) throw err;
      throw new EngineError("internal", `forced tool call failed: ${(err as Error).message}`, { sessionId: this.id, cause: err });
    }
    yield { type: "delta", text, positionTokens: this.positionTokens };
    const done: AppendResult = {
      finishReason: FinishReason.FINISH_REASON_STOP,
      positionTokens: this.positionTokens,
      inputEndTokens,
      inputTokens: tokens.length,
      outputTokens: this.positionTokens - inputEndTokens,
      appendMs,
      turnMs: performance.now() - started,
    };
    yield { type: "done", done };
  }

  /** Evaluates `tokens` at the end of the sequence and samples the next token. */
  private async evaluateAndSample(tokens: Token[], temperature: number): Promise<Token | undefined> {
    const last = tokens.length - 1;
    const items = tokens.map((t, i) =>
      i === last
        ? ([t, { generateNext: { token: true, options: { temperature, ...(this.seed === undefined ? {} : { seed: this.seed + this.steps++ }) } } }] as const)
        : t,
    );
    const results = await this.sequence.controlledEvaluate(items as Parameters<LlamaContextSequence["controlledEvaluate"]>[0]);
    return results[last]?.next.token ?? undefined;
  }

  async rewind(positionTokens: number, signal?: AbortSignal): Promise<number> {
    this.assertUsable();
    if (signal?.aborted) throw new EngineError("aborted", "rewind aborted", { sessionId: this.id });
    const current = this.positionTokens;
    if (!Number.isInteger(positionTokens)) {
      throw new EngineError("invalid_argument", `rewind position must be an integer, got ${positionTokens}`, { sessionId: this.id });
    }
    if (positionTokens < this.startTokens || positionTokens > current) {
      throw new EngineError(
        "rewind_out_of_range",
        `rewind to ${positionTokens} outside [${this.startTokens}, ${current}] (system prompt end, current length)`,
        { sessionId: this.id },
      );
    }
    if (positionTokens < current) await this.sequence.eraseContextTokenRanges([{ start: positionTokens, end: current }]);
    return this.positionTokens;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // An append in flight sees `closed` at its next token and finishes with ABORT.
    await this.inFlight;
    this.onClose(this.id);
    this.sequence.dispose();
    await this.context.dispose();
  }

  private assertUsable(): void {
    if (this.closed) throw new EngineError("session_closed", `session ${this.id} is closed`, { sessionId: this.id });
    if (this.inFlight) throw new EngineError("busy", `session ${this.id} already has an append in flight`, { sessionId: this.id });
  }
}

function validateAppend(chunk: EngineChunk, options: AppendOptions, sessionId: string): void {
  if ((chunk.audio && chunk.audio.frames > 0) || (chunk.video && chunk.video.length > 0)) {
    throw new EngineError("unsupported_modality", "the embedded engine takes text only; audio and video are not supported", { sessionId });
  }
  if (!Number.isInteger(options.maxOutputTokens) || options.maxOutputTokens < 0) {
    throw new EngineError("invalid_argument", `maxOutputTokens must be a non-negative integer, got ${options.maxOutputTokens}`, { sessionId });
  }
  const temperature = options.temperature ?? 0;
  if (!Number.isFinite(temperature) || temperature < 0) {
    throw new EngineError("invalid_argument", `temperature must be >= 0, got ${temperature}`, { sessionId });
  }
  if (!Number.isFinite(chunk.startMs) || chunk.startMs < 0) {
    throw new EngineError("invalid_argument", `startMs must be >= 0, got ${chunk.startMs}`, { sessionId });
  }
}
