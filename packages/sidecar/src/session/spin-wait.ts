// Keeps the event loop awake across the moments live sessions' next input
// chunks are due, so a chunk is read the instant it lands (--spin-window-ms).
//
// A live client sends one chunk every chunk duration (200 ms). Between chunks
// the sidecar sleeps in epoll_wait, and a chunk that wakes it pays for the
// wake-up before any of its work: a virtual CPU's halt and reschedule on a
// cloud host, an idle state's exit on bare metal, caches gone cold. Since
// chunks come on a beat, the wait can be moved off the chunk's path: a timer
// wakes the loop `windowMs` before a session's next chunk is due (one beat
// after its last: the gap its chunks come at, learned per session), and the
// loop spins (setImmediate: each turn polls for I/O without blocking) until
// that chunk arrives, or gives up `windowMs` after it was due (a client that
// paused stops costing CPU). Each session costs about a millisecond of one
// core per chunk; past `maxSessions` no window opens, the load itself then
// keeps the loop awake. Measured gain: 0.1 ms off a 1 ms round trip's median
// on a cloud GPU host (docs/benchmarks.md, "Spin-wait"), hence off by default.

/** What spinning needs from the runtime; the real one by default, a hand-driven one in tests. */
export interface SpinClock {
  now(): number;
  /** A timer that does not hold the process open. */
  setTimer(fn: () => void, ms: number): unknown;
  clearTimer(timer: unknown): void;
  /** Runs `fn` on the loop's next turn, after polling I/O without blocking. */
  nextTurn(fn: () => void): void;
}

const REAL_CLOCK: SpinClock = {
  now: () => performance.now(),
  setTimer: (fn, ms) => setTimeout(fn, ms).unref(),
  clearTimer: (timer) => clearTimeout(timer as NodeJS.Timeout),
  // A referenced immediate: Node polls without blocking only while one is pending (an unref'd one
  // waits for the next event). It holds the process open for the rest of a window at most.
  nextTurn: (fn) => void setImmediate(fn),
};

export interface SpinWaitOptions {
  /** How long before a chunk is due the loop starts spinning, and how long past it spinning goes on; 0 turns spinning off. */
  windowMs: number;
  /** Live sessions (those sending chunks) above which no window opens. */
  maxSessions: number;
  clock?: SpinClock;
}

/** Chunk durations a window is kept for: others are no beat (or a test's). */
const MIN_PERIOD_MS = 20;
const MAX_PERIOD_MS = 5_000;
/** Weight of the newest gap between two chunks in a session's learned beat. */
const BEAT_GAIN = 0.25;
/**
 * Node fires a timer up to a millisecond or so early by performance.now(): a
 * window opening within this long is waited for spinning, not by a new timer.
 */
const TIMER_SLACK_MS = 2;

/** One session's beat: when its last chunk came, how far apart its chunks come, when the next is due. */
interface Beat {
  lastAt: number;
  periodMs: number;
  /** Infinity once its window passed with no chunk: nothing is due until the next one. */
  dueAt: number;
  /** The window either side of dueAt: windowMs, at most a quarter of the beat (never a spin without pause). */
  windowMs: number;
}

export class SpinWait {
  private readonly beats = new Map<object, Beat>();
  /** Beats with a chunk due (dueAt finite): the sessions sending now. */
  private live = 0;
  private readonly clock: SpinClock;
  private timer: unknown;
  /** When the armed timer fires; Infinity when none is armed. */
  private timerAt = Infinity;
  private spinning = false;
  private spinStartedAt = 0;
  private spunMs = 0;
  private closed = false;

  constructor(private readonly opts: SpinWaitOptions) {
    this.clock = opts.clock ?? REAL_CLOCK;
  }

  get enabled(): boolean {
    return this.opts.windowMs > 0 && this.opts.maxSessions > 0;
  }

  /** Time spent spinning so far, ms (what the windows cost in CPU). */
  get spinMs(): number {
    return this.spunMs + (this.spinning ? this.clock.now() - this.spinStartedAt : 0);
  }

  /**
   * A chunk of `session` covering `durationMs` of input arrived. Its next one is
   * due one beat later: the gap its chunks have been coming at, learned from
   * their arrivals (a client's clock and pacing are its own), or `durationMs`
   * until there is a gap to learn from.
   */
  arrived(session: object, durationMs: number): void {
    if (!this.enabled || this.closed) return;
    if (!(durationMs >= MIN_PERIOD_MS && durationMs <= MAX_PERIOD_MS)) {
      this.forget(session);
      return;
    }
    const now = this.clock.now();
    const beat = this.beats.get(session);
    let periodMs = durationMs;
    if (beat) {
      const gap = now - beat.lastAt;
      // A gap far from the chunk's duration (a pause, a burst catching up) starts the beat afresh.
      if (gap >= durationMs / 2 && gap <= durationMs * 1.5) periodMs = beat.periodMs + BEAT_GAIN * (gap - beat.periodMs);
    }
    const next = { lastAt: now, periodMs, dueAt: now + periodMs, windowMs: Math.min(this.opts.windowMs, periodMs / 4) };
    if (!beat || beat.dueAt === Infinity) this.live++;
    if (beat) Object.assign(beat, next);
    else this.beats.set(session, next);
    // A spinning loop finds the new window itself; a timer armed earlier than this window still fires first.
    if (!this.spinning && next.dueAt - next.windowMs < this.timerAt) this.arm();
  }

  /** The session ended or lost its stream: no chunk of it is coming. */
  forget(session: object): void {
    const beat = this.beats.get(session);
    if (!beat) return;
    if (beat.dueAt !== Infinity) this.live--;
    this.beats.delete(session);
    if (this.live === 0 && !this.spinning) this.disarm();
  }

  close(): void {
    this.closed = true;
    this.beats.clear();
    this.live = 0;
    this.disarm();
  }

  /** Arms the timer for the earliest window still to open. */
  private arm(): void {
    this.disarm();
    if (this.closed || this.live === 0 || this.live > this.opts.maxSessions) return;
    let first = Infinity;
    for (const beat of this.beats.values()) first = Math.min(first, beat.dueAt - beat.windowMs);
    this.timerAt = first;
    this.timer = this.clock.setTimer(() => this.wake(), Math.max(0, first - this.clock.now()));
  }

  private disarm(): void {
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timer = undefined;
    this.timerAt = Infinity;
  }

  private wake(): void {
    this.timer = undefined;
    this.timerAt = Infinity;
    this.spinStartedAt = this.clock.now();
    this.spinning = true;
    this.spin();
  }

  /** One turn of the spin: go on while a window is open (or about to open), else sleep until the next opens. */
  private readonly spin = (): void => {
    const now = this.clock.now();
    let open = false;
    let nextOpens = Infinity;
    if (!this.closed && this.live <= this.opts.maxSessions) {
      for (const beat of this.beats.values()) {
        if (beat.dueAt === Infinity) continue;
        if (now > beat.dueAt + beat.windowMs) {
          // Past its window: the client paused or left; it costs nothing until its next chunk.
          beat.dueAt = Infinity;
          this.live--;
        } else if (now >= beat.dueAt - beat.windowMs) open = true;
        else nextOpens = Math.min(nextOpens, beat.dueAt - beat.windowMs);
      }
    }
    if (open || nextOpens - now <= TIMER_SLACK_MS) {
      this.clock.nextTurn(this.spin);
      return;
    }
    this.spinning = false;
    this.spunMs += now - this.spinStartedAt;
    this.arm();
  };
}
