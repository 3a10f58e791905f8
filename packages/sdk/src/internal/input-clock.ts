// The realtime input clock: calls `tick` once per chunk of wall time,
// correcting for timer drift and catching up on ticks the event loop missed.

/** Ticks one timer callback catches up on; more owed ones go in later callbacks, or are let go (see fire). */
export const MAX_CATCH_UP_TICKS = 5;

export class InputClock {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private startedAt = 0;
  private ticks = 0;

  /**
   * `backlog`: whether input waits that a tick would send (at least a chunk's
   * worth of audio). Ticks owed past a stall are then all made up, a batch per
   * timer callback, so the audio pushed meanwhile goes out and later chunks
   * are not late by the stall; without a backlog (nothing was pushed: a
   * suspended tab or laptop) they are let go instead of cutting empty chunks.
   */
  constructor(
    private readonly chunkDurationMs: number,
    private readonly tick: () => void,
    private readonly now: () => number = () => performance.now(),
    private readonly backlog: () => boolean = () => false,
  ) {}

  start(): void {
    if (this.timer !== undefined) return;
    this.startedAt = this.now();
    this.ticks = 0;
    this.schedule();
  }

  stop(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Wall time since the current chunk opened, in ms (offset of a video frame inside its chunk). */
  elapsedInChunkMs(): number {
    if (this.timer === undefined) return 0;
    const elapsed = this.now() - this.startedAt - this.ticks * this.chunkDurationMs;
    return Math.min(Math.max(0, Math.round(elapsed)), this.chunkDurationMs - 1);
  }

  private schedule(): void {
    const due = this.startedAt + (this.ticks + 1) * this.chunkDurationMs;
    this.timer = setTimeout(() => this.fire(), Math.max(0, due - this.now()));
  }

  private fire(): void {
    const owed = Math.floor((this.now() - this.startedAt) / this.chunkDurationMs) - this.ticks;
    const count = Math.min(Math.max(1, owed), MAX_CATCH_UP_TICKS);
    for (let i = 0; i < count && this.timer !== undefined; i++) {
      this.ticks++;
      this.tick();
    }
    // More owed: made up in the next callback (at once) while input waits, else let go.
    if (owed > MAX_CATCH_UP_TICKS && !this.backlog()) this.ticks += owed - MAX_CATCH_UP_TICKS;
    if (this.timer !== undefined) this.schedule();
  }
}
