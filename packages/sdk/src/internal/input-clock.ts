// The realtime input clock: calls `tick` once per chunk of wall time,
// correcting for timer drift and catching up on ticks the event loop missed.

const MAX_CATCH_UP_TICKS = 5;

export class InputClock {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private startedAt = 0;
  private ticks = 0;

  constructor(
    private readonly chunkDurationMs: number,
    private readonly tick: () => void,
    private readonly now: () => number = () => performance.now(),
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
    if (owed > MAX_CATCH_UP_TICKS) this.ticks += owed - MAX_CATCH_UP_TICKS;
    if (this.timer !== undefined) this.schedule();
  }
}
