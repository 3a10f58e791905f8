import { describe, expect, it } from "vitest";
import { SpinWait, type SpinClock } from "./spin-wait.js";

/** A clock the test moves: timers fire and spin turns run only when it says so. */
class HandClock implements SpinClock {
  t = 0;
  /** How early timers fire (Node's do, by up to a millisecond or so, by performance.now()). */
  constructor(private readonly earlyMs = 0) {}
  timers = new Map<number, { at: number; fn: () => void }>();
  turns: (() => void)[] = [];
  private nextId = 1;
  now = () => this.t;
  setTimer = (fn: () => void, ms: number) => {
    const id = this.nextId++;
    this.timers.set(id, { at: this.t + ms - this.earlyMs, fn });
    return id;
  };
  clearTimer = (id: unknown) => void this.timers.delete(id as number);
  nextTurn = (fn: () => void) => void this.turns.push(fn);

  /** Moves time to `to`, firing timers that come due and running spin turns every `stepMs` while any is queued. */
  advance(to: number, stepMs = 0.1): void {
    while (this.t < to) {
      const turns = this.turns.splice(0);
      for (const turn of turns) turn();
      const due = [...this.timers].filter(([, timer]) => timer.at <= this.t);
      for (const [id, timer] of due) {
        this.timers.delete(id);
        timer.fn();
      }
      this.t = Math.min(to, this.t + stepMs);
    }
  }

  get spinning(): boolean {
    return this.turns.length > 0;
  }
}

const setup = (windowMs = 2, maxSessions = 64, earlyMs = 0) => {
  const clock = new HandClock(earlyMs);
  return { clock, spin: new SpinWait({ windowMs, maxSessions, clock }) };
};

describe("SpinWait", () => {
  it("sleeps between chunks and spins from windowMs before the next one is due until it arrives", () => {
    const { clock, spin } = setup();
    const session = {};
    spin.arrived(session, 200);
    clock.advance(197.9);
    expect(clock.spinning).toBe(false);
    expect(spin.spinMs).toBe(0);
    clock.advance(199);
    expect(clock.spinning).toBe(true);
    clock.advance(200.5);
    spin.arrived(session, 200); // the chunk, half a millisecond late
    clock.advance(201);
    expect(clock.spinning).toBe(false);
    expect(spin.spinMs).toBeGreaterThan(2);
    expect(spin.spinMs).toBeLessThan(3);
    // The next window opens 200 ms after that arrival.
    clock.advance(398);
    expect(clock.spinning).toBe(false);
    clock.advance(399);
    expect(clock.spinning).toBe(true);
  });

  it("gives up windowMs after a chunk was due, and costs nothing more until the client sends again", () => {
    const { clock, spin } = setup();
    const session = {};
    spin.arrived(session, 200);
    clock.advance(203);
    expect(clock.spinning).toBe(false);
    const spent = spin.spinMs;
    expect(spent).toBeGreaterThan(3.5);
    expect(spent).toBeLessThan(4.5);
    clock.advance(1000);
    expect(spin.spinMs).toBe(spent);
    expect(clock.timers.size).toBe(0);
  });

  it("learns the beat a client's chunks come at, when its pacing is not the chunk duration", () => {
    const { clock, spin } = setup();
    const session = {};
    const gap = 204.5; // a client pacing 200 ms chunks with a sleep of 200 ms after each round trip, say
    const caught: boolean[] = [];
    for (let n = 0; n <= 8; n++) {
      clock.advance(n * gap - 0.05);
      caught.push(clock.spinning);
      clock.advance(n * gap);
      spin.arrived(session, 200);
    }
    // The first chunks come after their window gave up; once the beat is learned the loop is awake when they land.
    expect(caught.slice(1, 3)).toEqual([false, false]);
    expect(caught.slice(5)).toEqual([true, true, true, true]);
  });

  it("starts a beat afresh after a pause", () => {
    const { clock, spin } = setup();
    const session = {};
    spin.arrived(session, 200);
    clock.advance(1000); // a pause: the window at 200 gave up
    spin.arrived(session, 200);
    clock.advance(1199.9);
    expect(clock.spinning).toBe(true); // due 200 ms after, not a learned 1000
  });

  it("spins on through a timer that fired early rather than sleeping again until the window opens", () => {
    const { clock, spin } = setup(2, 64, 1.5);
    const session = {};
    spin.arrived(session, 200);
    clock.advance(196.6); // the timer for 198 fired at 196.5
    expect(clock.spinning).toBe(true);
    expect(clock.timers.size).toBe(0);
    clock.advance(200);
    spin.arrived(session, 200);
    clock.advance(200.5);
    expect(clock.spinning).toBe(false);
  });

  it("keeps a window to a quarter of the beat, so a short chunk never makes it spin without pause", () => {
    const { clock, spin } = setup(20);
    const session = {};
    spin.arrived(session, 40); // window 10 ms either side of 40, not 20
    clock.advance(29);
    expect(clock.spinning).toBe(false);
    clock.advance(31);
    expect(clock.spinning).toBe(true);
    clock.advance(51);
    expect(clock.spinning).toBe(false);
  });

  it("counts only sessions sending now against maxSessions: a paused one leaves room", () => {
    const { clock, spin } = setup(2, 1);
    const [paused, talking] = [{}, {}];
    spin.arrived(paused, 200);
    clock.advance(300); // its window passed: paused
    spin.arrived(talking, 200);
    clock.advance(499);
    expect(clock.spinning).toBe(true);
    spin.arrived(paused, 200); // both sending: over the limit, no window opens
    clock.advance(500.5);
    spin.arrived(talking, 200);
    clock.advance(699);
    expect(clock.spinning).toBe(false);
    expect(clock.timers.size).toBe(0);
  });

  it("spins while any session's window is open and wakes for the earliest", () => {
    const { clock, spin } = setup();
    const [a, b] = [{}, {}];
    spin.arrived(a, 200); // due at 200
    clock.advance(50);
    spin.arrived(b, 200); // due at 250
    clock.advance(199);
    expect(clock.spinning).toBe(true);
    spin.arrived(a, 200);
    clock.advance(230);
    expect(clock.spinning).toBe(false);
    clock.advance(249);
    expect(clock.spinning).toBe(true);
  });

  it("opens no window for a forgotten session, above maxSessions, for chunk durations that are no beat, or after close", () => {
    const forgotten = setup();
    const s = {};
    forgotten.spin.arrived(s, 200);
    forgotten.spin.forget(s);
    forgotten.clock.advance(400);
    expect(forgotten.spin.spinMs).toBe(0);

    const crowded = setup(2, 2);
    for (let i = 0; i < 3; i++) crowded.spin.arrived({}, 200);
    crowded.clock.advance(400);
    expect(crowded.spin.spinMs).toBe(0);

    const odd = setup();
    odd.spin.arrived({}, 0);
    odd.spin.arrived({}, 60_000);
    odd.clock.advance(400);
    expect(odd.spin.spinMs).toBe(0);
    expect(odd.clock.timers.size).toBe(0);

    const closed = setup();
    closed.spin.arrived({}, 200);
    closed.clock.advance(199);
    expect(closed.clock.spinning).toBe(true);
    closed.spin.close();
    closed.clock.advance(205);
    expect(closed.clock.spinning).toBe(false);
    closed.spin.arrived({}, 200);
    expect(closed.clock.timers.size).toBe(0);
  });

  it("is off with a window of 0", () => {
    const { clock, spin } = setup(0);
    expect(spin.enabled).toBe(false);
    spin.arrived({}, 200);
    expect(clock.timers.size).toBe(0);
  });

  it("keeps the real event loop busy through a window, and lets timers run meanwhile", async () => {
    // A wide window (50..110 ms from now), measured well inside it: late timers on a busy machine stay within it.
    const spin = new SpinWait({ windowMs: 30, maxSessions: 4 });
    const started = performance.now();
    spin.arrived({}, 80);
    const at = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    let timersFired = 0;
    const ticker = setInterval(() => timersFired++, 5);
    await at(62);
    const spinning = performance.eventLoopUtilization();
    await at(20); // 62..82 ms: the loop never waits in epoll (asleep, it would wait between two 5 ms ticks: utilization near 0)
    const spinStretch = performance.eventLoopUtilization(spinning);
    await at(50);
    // Past the window (it ended 110 ms after the arrival): the spin has stopped, and stays stopped.
    const spun = spin.spinMs;
    await at(30);
    clearInterval(ticker);
    spin.close();
    expect(spinStretch.utilization).toBeGreaterThan(0.6);
    expect(spun).toBeGreaterThan(20);
    expect(spin.spinMs).toBe(spun);
    // A window spans 60 ms; on a machine busy enough to stretch timers, the wall time stretches with it.
    expect(spun).toBeLessThan(performance.now() - started - 30);
    // Timers ran all along, the spin included (every 5 ms for 132 ms; fewer on a busy machine).
    expect(timersFired).toBeGreaterThan(5);
  });
});
