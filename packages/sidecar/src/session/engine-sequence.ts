// The engine session a conversation runs on, and the ones that follow it: one
// micro-turn's append with the rollover rules of context-window.ts around it,
// and barge-in's rewind.
import { setTimeout as sleep } from "node:timers/promises";
import { ErrorCode, type FinishReason } from "@microturn/protocol";
import type { AppendOptions, EngineChunk, EngineSession } from "../engines/engine.js";
import { EngineError } from "../engines/errors.js";
import { SessionFault } from "../errors.js";
import { needsRollover, openCarryingSession, rolloverHelps } from "./context-window.js";
import type { ConversationEntry } from "./ports.js";

export interface TurnOutput {
  text: string;
  /** What the engine spoke with the text, PCM16 mono; absent when it spoke nothing. */
  audio?: { pcm16: Uint8Array; sampleRateHz: number };
  result: { finishReason: FinishReason; appendMs: number; inputStart: number; inputEnd: number; outputEnd: number };
}

export interface RolloverSample {
  fromTokens: number;
  toTokens: number;
  carriedLines: number;
}

export interface EngineSequenceOptions {
  session: EngineSession;
  /** The first session's system prompt; every later one starts with it too. */
  systemPrompt: string;
  /** Opens the next engine session; without it a full sequence answers TOO_LARGE. */
  reopen?: (systemPrompt: string) => Promise<EngineSession>;
  /** Called once the new session is in place (the old one is closed after). */
  onRollover: (sample: RolloverSample) => void;
  /**
   * The engine can cut its sequence back (EngineCapabilities.supportsRewind).
   * Without it an answer that failed half-way is not taken back: an append-only
   * engine "rewinds" only to where it already is, and the input would go in twice.
   */
  supportsRewind?: boolean;
  /**
   * The system prompt alone, in tokens, when the first session carries more
   * (a session that moved here from another sidecar); else where it began.
   */
  promptTokens?: number;
}

/**
 * Waits before each retry of a turn that failed with a transient engine error
 * (busy, unavailable) before producing anything: two retries within a chunk's
 * 200 ms, so a blip (a server finishing the previous request, a reconnect)
 * costs latency, not the user's input.
 */
const RETRY_DELAYS_MS = [50, 150];
/**
 * Only a failure this quick is a blip worth retrying; a turn that ran into a
 * deadline or hung before failing would hold the session's queue as long again.
 */
const QUICK_FAILURE_MS = 1_000;

/** A transient engine failure before the turn produced any output. */
class FailedBeforeOutput extends Error {
  constructor(override readonly cause: EngineError) {
    super(cause.message);
  }
}

/** A failure after the turn's output began: the engine holds the input and part of an answer nobody got. */
class FailedAfterOutput extends Error {
  constructor(override readonly cause: unknown) {
    super(cause instanceof Error ? cause.message : String(cause));
  }
}

/**
 * A micro-turn that failed after its output began. `recovered` says where its
 * input sits once the unfinished answer was taken back out of the engine's
 * memory (the turn is then as if the model had stayed silent); absent when
 * that could not be done. `cause` is the engine's failure, for the client.
 */
export class TurnFailed extends Error {
  constructor(
    override readonly cause: unknown,
    readonly recovered?: { inputStart: number; inputEnd: number },
  ) {
    super(cause instanceof Error ? cause.message : String(cause));
  }
}

/** The engine refused a chunk as too large before producing anything. */
class SequenceFull extends Error {
  constructor(override readonly cause: EngineError) {
    super(cause.message);
  }
}

export class EngineSequence {
  private current: EngineSession;
  /** Where the current engine session began (its system prompt and carried text). */
  private base: number;
  /** The system prompt alone, in tokens (where the first engine session began). */
  private readonly promptTokens: number;
  private largestInputTokens = 0;
  /**
   * Speech whose text the tool-call parser holds back (it may open a call), kept
   * across micro-turns: the parser can let go of the text in a later turn, and its
   * audio goes out first then. Dropped once the text proves to be a call (text
   * after it comes out with nothing released), on a rewind and on a rollover.
   * Bounded: a call left open is abandoned within MAX_OPEN_CALL_TURNS turns.
   */
  private heldAudio: Uint8Array[] = [];
  private heldAudioRate = 0;
  private count = 0;
  /** Where the last append began, in the current engine session (after any rollover of its turn). */
  private appendFrom = 0;

  /** The options less the first session, which is not kept once a rollover replaced it. */
  private readonly opts: Omit<EngineSequenceOptions, "session">;

  constructor({ session, ...opts }: EngineSequenceOptions) {
    this.opts = opts;
    this.current = session;
    this.base = session.positionTokens;
    this.promptTokens = opts.promptTokens ?? this.base;
  }

  get positionTokens(): number {
    return this.current.positionTokens;
  }

  get rollovers(): number {
    return this.count;
  }

  /**
   * Whether the last turn's input is in the engine's sequence: the position
   * moved from where its append began, in whichever engine session it ran
   * (a turn that rolled over appended to the new one).
   */
  get lastInputTaken(): boolean {
    return this.current.positionTokens !== this.appendFrom;
  }

  /**
   * One micro-turn. Rolls over first when the turn might not fit, or once when
   * the engine says it did not; `carried` is the conversation a rollover takes
   * along, without this turn's own input (appended after it). `onDelta` turns
   * model text into what the listener hears.
   */
  async turn(chunk: EngineChunk, options: AppendOptions, carried: () => readonly ConversationEntry[], onDelta: (text: string) => string): Promise<TurnOutput> {
    if (needsRollover(this.current.positionTokens, this.capacityTokens(), this.largestInputTokens, options.maxOutputTokens) && this.canRollOver()) {
      try {
        await this.rollOver(carried());
      } catch {
        // The early rollover is a precaution (the turn may well still fit) and the engine may have no
        // session to spare right now: the turn goes on in the current sequence, which says if it is full.
      }
    }
    try {
      return await this.appendRetrying(chunk, options, onDelta);
    } catch (err) {
      if (!(err instanceof SequenceFull)) throw err;
      // The estimate missed (a chunk much larger than earlier ones): roll over and
      // try once more, unless the chunk alone is too large for a fresh sequence.
      if (!this.canRollOver()) throw err.cause;
      await this.rollOver(carried());
      return this.appendRetrying(chunk, options, onDelta).catch((again: unknown) => {
        throw again instanceof SequenceFull ? again.cause : again;
      });
    }
  }

  /** Appends, retrying transient failures before any output (see retry); a full sequence comes out as SequenceFull. */
  private async appendRetrying(chunk: EngineChunk, options: AppendOptions, onDelta: (text: string) => string): Promise<TurnOutput> {
    const before = this.current.positionTokens;
    this.appendFrom = before;
    // Speech held for text the parser holds, as it was before the turn: a taken-back answer puts it back.
    const heldBefore = this.heldAudio.length > 0 ? [...this.heldAudio] : [];
    const started = performance.now();
    try {
      try {
        return await this.append(chunk, options, onDelta);
      } catch (err) {
        if (err instanceof FailedBeforeOutput) return await this.retry(err, before, started, chunk, options, onDelta);
        throw err;
      }
    } catch (err) {
      if (err instanceof FailedAfterOutput) {
        const failed = await this.takeBackAnswer(err.cause, before, chunk, options);
        if (failed.recovered) this.heldAudio = heldBefore;
        throw failed;
      }
      throw err;
    }
  }

  /**
   * After a failure mid-answer the engine remembers the user's input and the
   * start of an answer the listener never got. Puts the sequence back to the
   * turn's start and appends the input alone, so the model keeps what was said
   * to it and forgets what it never finished saying. Not on a closing session,
   * nor on an engine that cannot rewind, nor when the engine cannot do it now (a
   * dead connection): then the failure stands as it is.
   */
  private async takeBackAnswer(cause: unknown, before: number, chunk: EngineChunk, options: AppendOptions): Promise<TurnFailed> {
    if (!this.opts.supportsRewind || options.signal?.aborted) return new TurnFailed(cause);
    try {
      // A remote engine may still be winding the failed request down and refuse a rewind for a moment
      // (busy): the same waits as a retry's.
      for (let attempt = 0; ; attempt++) {
        try {
          await this.current.rewind(before, options.signal);
          break;
        } catch (err) {
          if (!(EngineError.isInstance(err) && err.retryable) || attempt >= RETRY_DELAYS_MS.length) throw err;
          await sleep(RETRY_DELAYS_MS[attempt]!, undefined, options.signal ? { signal: options.signal } : {});
        }
      }
      const inputEnd = await this.appendInput(chunk, options.signal);
      return inputEnd === undefined ? new TurnFailed(cause) : new TurnFailed(cause, { inputStart: before, inputEnd });
    } catch {
      return new TurnFailed(cause);
    }
  }

  /**
   * The chunk was acked, so the client will not send it again: a transient
   * failure before any output is retried here, after the first attempt that
   * began at `before` (sequence position) and `started` (clock) failed.
   */
  private async retry(
    failure: FailedBeforeOutput,
    before: number,
    started: number,
    chunk: EngineChunk,
    options: AppendOptions,
    onDelta: (text: string) => string,
  ): Promise<TurnOutput> {
    let err = failure;
    for (let attempt = 0; ; attempt++) {
      const delayMs = RETRY_DELAYS_MS[attempt];
      if (delayMs === undefined || options.signal?.aborted || performance.now() - started > QUICK_FAILURE_MS) throw err.cause;
      try {
        // The wait comes first: a channel still reconnecting, or a server still tearing the failed turn down,
        // would refuse the rewind below too.
        await sleep(delayMs, undefined, options.signal ? { signal: options.signal } : {});
      } catch {
        throw err.cause;
      }
      if (err.cause.code !== "busy") {
        // `busy` is a refusal: nothing was appended. Any other failure may have come after the engine took the
        // input (a remote one reports positions only with output), so the sequence is put back where it was
        // first. A rewind refused for a passing reason is one more failed attempt; otherwise no retry.
        try {
          await this.current.rewind(before);
        } catch (rewindError) {
          if (EngineError.isInstance(rewindError) && rewindError.retryable) continue;
          throw err.cause;
        }
      }
      if (this.current.positionTokens !== before) throw err.cause;
      started = performance.now();
      try {
        return await this.append(chunk, options, onDelta);
      } catch (again) {
        if (!(again instanceof FailedBeforeOutput)) throw again;
        err = again;
      }
    }
  }

  /**
   * Barge-in: the model keeps only what the listener heard, so the inputs after
   * that point go back in without their (unheard) output. Returns where each
   * re-appended input now sits, for the turn history.
   */
  async rewind(positionTokens: number, reappend: readonly EngineChunk[]): Promise<{ inputStartTokens: number; inputEndTokens: number }[]> {
    await this.current.rewind(positionTokens);
    this.heldAudio = [];
    const positions: { inputStartTokens: number; inputEndTokens: number }[] = [];
    for (const chunk of reappend) {
      const inputStartTokens = this.current.positionTokens;
      const inputEndTokens = await this.appendInput(chunk);
      if (inputEndTokens !== undefined) positions.push({ inputStartTokens, inputEndTokens });
    }
    return positions;
  }

  /** Appends a chunk as input only (no answer); where its input ends, undefined when the engine said no `done`. */
  private async appendInput(chunk: EngineChunk, signal?: AbortSignal): Promise<number | undefined> {
    let inputEnd: number | undefined;
    for await (const out of this.current.append(chunk, { maxOutputTokens: 0, ...(signal ? { signal } : {}) })) {
      if (out.type === "done") inputEnd = out.done.inputEndTokens;
    }
    return inputEnd;
  }

  close(): Promise<void> {
    return this.current.close();
  }

  private async append(chunk: EngineChunk, options: AppendOptions, onDelta: (text: string) => string): Promise<TurnOutput> {
    let text = "";
    let result: TurnOutput["result"] | undefined;
    let deltas = 0;
    // Made only when the engine speaks: a text turn allocates nothing for audio.
    let audio: Uint8Array[] | undefined;
    let audioRate = 0;
    const inputStart = this.current.positionTokens;
    try {
      for await (const out of this.current.append(chunk, options)) {
        if (out.type === "delta") {
          deltas++;
          const visible = onDelta(out.text);
          text += visible;
          // Speech goes with what the listener gets. Audio whose text the tool-call parser holds back (it may open
          // a call) waits with it (heldAudio): spoken when the text is released, in this turn or a later one.
          const spoken = out.audioPcm16 && out.audioPcm16.length > 0 ? out.audioPcm16 : undefined;
          if (spoken) audioRate = out.audioSampleRateHz ?? audioRate;
          const held = this.heldAudio;
          if (visible.length > out.text.length && held.length > 0) {
            // The parser let go of text it held (it opened no call): that text's audio goes first.
            audioRate ||= this.heldAudioRate;
            (audio ??= []).push(...held.splice(0));
            if (spoken) audio.push(spoken);
          } else if ((visible === "" && out.text !== "") || (out.text === "" && held.length > 0)) {
            // Text held back (or in a call), or audio with no text while something is held: it waits.
            if (spoken) {
              held.push(spoken);
              this.heldAudioRate = out.audioSampleRateHz ?? this.heldAudioRate;
            }
          } else {
            // Text came out and nothing held was released: what was held was a call's, never heard.
            if (held.length > 0) this.heldAudio = [];
            if (spoken) (audio ??= []).push(spoken);
          }
        } else {
          // A remote engine's timing is only reported, never trusted: NaN or a negative figure counts as 0.
          const appendMs = Number.isFinite(out.done.appendMs) && out.done.appendMs > 0 ? out.done.appendMs : 0;
          result = { finishReason: out.done.finishReason, appendMs, inputStart, inputEnd: out.done.inputEndTokens, outputEnd: out.done.positionTokens };
        }
      }
    } catch (err) {
      if (EngineError.isInstance(err) && err.code === "too_large" && !text) throw new SequenceFull(err);
      if (EngineError.isInstance(err) && err.retryable && deltas === 0 && !result) throw new FailedBeforeOutput(err);
      if (deltas > 0 && !result) throw new FailedAfterOutput(err);
      throw err;
    }
    if (!result) throw new SessionFault(ErrorCode.ERROR_CODE_ENGINE, `engine ended micro-turn ${chunk.seq} without a result`, { seq: chunk.seq });
    this.largestInputTokens = Math.max(this.largestInputTokens, result.inputEnd - result.inputStart);
    if (!audio || audio.length === 0 || audioRate <= 0) return { text, result };
    return { text, result, audio: { pcm16: audio.length === 1 ? audio[0]! : Buffer.concat(audio), sampleRateHz: audioRate } };
  }

  private capacityTokens(): number {
    return this.current.stats().capacityTokens;
  }

  private canRollOver(): boolean {
    return this.opts.reopen !== undefined && rolloverHelps(this.current.positionTokens, this.base, this.capacityTokens());
  }

  private async rollOver(carried: readonly ConversationEntry[]): Promise<void> {
    const old = this.current;
    const { fresh, carriedLines } = await openCarryingSession(old, this.opts.systemPrompt, this.promptTokens, carried, this.opts.reopen!);
    this.current = fresh;
    this.base = fresh.positionTokens;
    this.heldAudio = [];
    this.count++;
    this.opts.onRollover({ fromTokens: old.positionTokens, toTokens: fresh.positionTokens, carriedLines });
    await old.close().catch(() => undefined);
  }
}
