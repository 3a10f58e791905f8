import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { InputClock, MAX_CATCH_UP_TICKS } from "./input-clock.js";

describe("InputClock", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  /** A clock on 200 ms chunks that was stalled for `stallMs` after its first tick; how many ticks it made in all. */
  function stalled(stallMs: number, backlog: boolean): number {
    let ticks = 0;
    const clock = new InputClock(200, () => ticks++, () => Date.now(), () => backlog);
    clock.start();
    vi.advanceTimersByTime(200);
    expect(ticks).toBe(1);
    // The event loop is blocked: wall time passes, no timer runs.
    vi.setSystemTime(Date.now() + stallMs);
    // The overdue tick, then 50 ms: room for the catch-up callbacks, none for another tick of its own.
    vi.advanceTimersByTime(250);
    clock.stop();
    return ticks;
  }

  it("ticks once per chunk of wall time", () => {
    let ticks = 0;
    const clock = new InputClock(200, () => ticks++, () => Date.now());
    clock.start();
    vi.advanceTimersByTime(1000);
    clock.stop();
    expect(ticks).toBe(5);
  });

  it("makes up every tick a stall owed while input waits (the audio pushed meanwhile stayed late for the rest of the session)", () => {
    // 3 s stalled + the 250 ms after: 16 ticks owed, all made (a batch per timer callback).
    expect(stalled(3000, true)).toBe(1 + 16);
  });

  it("lets the ticks of a long stall go when no input waits (no burst of empty chunks after a suspended tab)", () => {
    expect(stalled(3000, false)).toBe(1 + MAX_CATCH_UP_TICKS);
  });
});
