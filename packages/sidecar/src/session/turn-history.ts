// What each micro-turn put into the model's sequence and when its output is
// heard, so a barge-in can cut the sequence back to what the user actually
// heard (ARCHITECTURE.md section 2, interruption).
import type { EngineChunk } from "../engines/engine.js";

/** Text output is timed as speech at this rate when there is no audio. */
export const TEXT_MS_PER_CHAR = 60;

/** How far back in input time a barge-in can cut by default. */
export const DEFAULT_REWIND_HORIZON_MS = 10_000;

export interface TurnRecord {
  seq: number;
  /** The input as appended, kept to re-append it after a rewind. */
  chunk: EngineChunk;
  /** Sequence position before the input was appended. */
  inputStartTokens: number;
  /** Position after the input, before output. */
  inputEndTokens: number;
  /** Position after the output. */
  outputEndTokens: number;
  outputText: string;
  /** Output time span [outputStartMs, outputStartMs + outputDurationMs). */
  outputStartMs: number;
  outputDurationMs: number;
}

export interface RewindPlan {
  /** Keep the sequence up to here. */
  positionTokens: number;
  /** Inputs after the cut, to append again (without output) in order. */
  reappend: EngineChunk[];
  /** Output text that was cut (never heard). */
  droppedText: string;
  /** Index into history of the first turn changed. */
  firstTurnIndex: number;
}

export class TurnHistory {
  private readonly turns: TurnRecord[] = [];
  private outputCursorMs = 0;
  private playedMs = 0;

  /**
   * Turns whose input and output both ended more than `horizonMs` of input
   * time before the newest chunk are forgotten, so a session holds a bounded
   * window of inputs (with their audio and video) however long it runs; a
   * barge-in reported later than that cuts no further back than the window.
   * `maxTurns` bounds the window again for very short chunks.
   */
  constructor(
    private readonly horizonMs = DEFAULT_REWIND_HORIZON_MS,
    private readonly maxTurns = 3000,
  ) {}

  /** Where the next output would start: after earlier output and after its input ended. */
  nextOutputStart(chunk: { startMs: number; durationMs: number }): number {
    return Math.max(this.outputCursorMs, chunk.startMs + chunk.durationMs);
  }

  /** Where the output produced so far ends on the output timeline. */
  get outputEndMs(): number {
    return this.outputCursorMs;
  }

  /** The furthest output the client reported played (capped at what was produced). */
  get playedUpToMs(): number {
    return this.playedMs;
  }

  /**
   * A playback ack: output before `playedUpToMs` was heard, so no barge-in
   * cuts before it and the turns it covers are forgotten at the next record.
   * Acks that go backwards change nothing.
   */
  notePlayed(playedUpToMs: number): void {
    this.playedMs = Math.max(this.playedMs, Math.min(playedUpToMs, this.outputCursorMs));
  }

  /** Output still to be heard at input time `nowMs`; > 0 means the model is mid-utterance. */
  pendingOutputMs(nowMs: number): number {
    return Math.max(0, this.outputCursorMs - nowMs);
  }

  record(turn: TurnRecord): void {
    this.turns.push(turn);
    if (turn.outputDurationMs > 0) this.outputCursorMs = turn.outputStartMs + turn.outputDurationMs;
    const cutoffMs = turn.chunk.startMs + turn.chunk.durationMs - this.horizonMs;
    let stale = Math.max(0, this.turns.length - this.maxTurns);
    while (stale < this.turns.length - 1 && (endsBefore(this.turns[stale]!, cutoffMs) || outputEnd(this.turns[stale]!) <= this.playedMs)) stale++;
    if (stale > 0) this.turns.splice(0, stale);
  }

  /** Output timing of a session that moved here from another sidecar (its turns did not move). */
  restoreTiming(outputEndMs: number, playedUpToMs: number): void {
    this.outputCursorMs = outputEndMs;
    this.playedMs = Math.min(playedUpToMs, outputEndMs);
  }

  /** Forgets every turn (their positions belong to a sequence that is gone); output timing goes on. */
  reset(): void {
    this.turns.length = 0;
  }

  /** Turns kept (the rewind window). */
  get length(): number {
    return this.turns.length;
  }

  last(): TurnRecord | undefined {
    return this.turns[this.turns.length - 1];
  }

  /**
   * Plans the cut for output heard up to `playedUpToMs`: the first turn with
   * unheard output keeps the heard share of its tokens; every later turn's
   * output is dropped and its input re-appended. Undefined when nothing unheard.
   */
  planRewind(playedUpToMs: number): RewindPlan | undefined {
    const index = this.turns.findIndex((t) => t.outputDurationMs > 0 && t.outputStartMs + t.outputDurationMs > playedUpToMs);
    if (index < 0) return undefined;
    const turn = this.turns[index]!;
    const heardShare = Math.min(1, Math.max(0, (playedUpToMs - turn.outputStartMs) / turn.outputDurationMs));
    const outputTokens = turn.outputEndTokens - turn.inputEndTokens;
    const keptTokens = Math.floor(outputTokens * heardShare);
    const keptChars = Math.floor(turn.outputText.length * heardShare);
    const later = this.turns.slice(index + 1);
    return {
      positionTokens: turn.inputEndTokens + keptTokens,
      reappend: later.map((t) => t.chunk),
      droppedText: turn.outputText.slice(keptChars) + later.map((t) => t.outputText).join(""),
      firstTurnIndex: index,
    };
  }

  /** Applies a plan after the engine rewound and re-appended: `positions` are the new input spans of later turns. */
  applyRewind(plan: RewindPlan, playedUpToMs: number, positions: { inputStartTokens: number; inputEndTokens: number }[]): void {
    const turn = this.turns[plan.firstTurnIndex]!;
    const heard = Math.max(0, playedUpToMs - turn.outputStartMs);
    const keptChars = Math.floor((turn.outputText.length * Math.min(heard, turn.outputDurationMs)) / (turn.outputDurationMs || 1));
    turn.outputText = turn.outputText.slice(0, keptChars);
    turn.outputDurationMs = Math.min(turn.outputDurationMs, heard);
    turn.outputEndTokens = plan.positionTokens;
    const later = this.turns.slice(plan.firstTurnIndex + 1);
    later.forEach((t, i) => {
      const p = positions[i]!;
      t.inputStartTokens = p.inputStartTokens;
      t.inputEndTokens = p.inputEndTokens;
      t.outputEndTokens = p.inputEndTokens;
      t.outputText = "";
      t.outputDurationMs = 0;
    });
    this.outputCursorMs = Math.min(this.outputCursorMs, playedUpToMs);
  }
}

function outputEnd(turn: TurnRecord): number {
  return turn.outputStartMs + turn.outputDurationMs;
}

function endsBefore(turn: TurnRecord, ms: number): boolean {
  return turn.chunk.startMs + turn.chunk.durationMs <= ms && outputEnd(turn) <= ms;
}
