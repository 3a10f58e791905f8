// A deterministic in-memory engine for the sidecar's own tests: one token per
// character, output chosen by a function of the input. Test-only.
import { FinishReason, Modality } from "@microturn/protocol";
import type { AppendOptions, Engine, EngineCapabilities, EngineChunk, EngineOutput, EngineSession, OpenSessionOptions } from "../../src/engines/engine.js";
import { EngineError } from "../../src/engines/errors.js";

export interface FakeEngineOptions {
  /** Output for a chunk; "" is silence. Default: echo the text upper-cased. */
  reply?: (chunk: EngineChunk) => string;
  supportsRewind?: boolean;
  inputModalities?: Modality[];
  delayMs?: number;
  /** For a chunk it returns a number n for: the engine fails (internal) after the n-th character of its answer. */
  failAfter?: (chunk: EngineChunk) => number | undefined;
  /** For a chunk it returns true for: the engine fails (internal) before taking its input. */
  failBefore?: (chunk: EngineChunk) => boolean;
  /** The capacity each session reports, asked each time (a test can shrink it to bring a rollover on); default 2^20. */
  capacityTokens?: () => number;
}

export class FakeSession implements EngineSession {
  readonly sequence: string[] = [];
  readonly appended: EngineChunk[] = [];
  appends = 0;
  closed = false;
  private inFlight = false;

  constructor(
    readonly id: string,
    private readonly opts: FakeEngineOptions,
    readonly systemPrompt = "",
  ) {}

  get positionTokens(): number {
    return this.sequence.length;
  }

  get text(): string {
    return this.sequence.join("");
  }

  async *append(chunk: EngineChunk, options: AppendOptions): AsyncIterable<EngineOutput> {
    if (this.closed) throw new EngineError("session_closed", "closed");
    if (this.inFlight) throw new EngineError("busy", "append in flight");
    this.inFlight = true;
    try {
      if (this.opts.delayMs) await new Promise((r) => setTimeout(r, this.opts.delayMs));
      if (this.opts.failBefore?.(chunk)) throw new EngineError("internal", `the engine failed before taking seq ${chunk.seq}`);
      const start = performance.now();
      const context = (chunk.context ?? []).map((c) => c.text).join("");
      const input = `${context}<${chunk.seq}>${chunk.text ?? ""}`;
      this.sequence.push(...input);
      this.appended.push(chunk);
      this.appends++;
      const inputEnd = this.sequence.length;
      const reply = options.maxOutputTokens > 0 ? (this.opts.reply ?? ((c) => (c.text ?? "").toUpperCase()))(chunk).slice(0, options.maxOutputTokens) : "";
      const failAt = options.maxOutputTokens > 0 ? this.opts.failAfter?.(chunk) : undefined;
      for (const [i, ch] of [...reply].entries()) {
        if (i === failAt) throw new EngineError("internal", `the engine failed mid-answer to seq ${chunk.seq}`);
        this.sequence.push(ch);
        yield { type: "delta", text: ch, positionTokens: this.sequence.length };
      }
      yield {
        type: "done",
        done: {
          finishReason: reply ? FinishReason.FINISH_REASON_LENGTH : FinishReason.FINISH_REASON_SILENT,
          positionTokens: this.sequence.length,
          inputEndTokens: inputEnd,
          inputTokens: input.length,
          outputTokens: reply.length,
          appendMs: performance.now() - start,
          turnMs: performance.now() - start,
        },
      };
    } finally {
      this.inFlight = false;
    }
  }

  async rewind(positionTokens: number): Promise<number> {
    if (positionTokens < 0 || positionTokens > this.sequence.length) throw new EngineError("rewind_out_of_range", `rewind to ${positionTokens}`);
    this.sequence.length = positionTokens;
    return positionTokens;
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  stats() {
    return { positionTokens: this.sequence.length, appends: this.appends, lastAppendMs: 0, capacityTokens: this.opts.capacityTokens?.() ?? 1 << 20 };
  }
}

export class FakeEngine implements Engine {
  readonly sessions: FakeSession[] = [];
  readonly capabilities: EngineCapabilities;

  constructor(private readonly opts: FakeEngineOptions = {}) {
    this.capabilities = {
      engine: "fake",
      modelId: "fake",
      inputModalities: opts.inputModalities ?? [Modality.MODALITY_TEXT],
      outputModalities: [Modality.MODALITY_TEXT],
      supportsRewind: opts.supportsRewind ?? true,
      maxContextTokens: 1 << 20,
      randomWeights: false,
    };
  }

  async openSession(options: OpenSessionOptions = {}): Promise<EngineSession> {
    const session = new FakeSession(options.sessionId ?? `s${this.sessions.length}`, this.opts, options.systemPrompt);
    this.sessions.push(session);
    return session;
  }

  async health() {
    return { serving: true, activeSessions: this.sessions.filter((s) => !s.closed).length };
  }

  async dispose(): Promise<void> {}
}
