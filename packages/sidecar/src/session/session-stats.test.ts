import { describe, expect, it } from "vitest";
import { METRICS_EVERY_MS, SessionStats } from "./session-stats.js";

const context = { queueLagMs: 200, positionTokens: 42, backgroundTasks: 1, contextRollovers: 0 };

describe("SessionStats", () => {
  it("reports quantiles, the real-time factor and the playback lag with the session's context", () => {
    const stats = new SessionStats();
    for (let i = 1; i <= 10; i++) stats.recordTurn({ latencyMs: i, turnMs: 20, appendMs: i / 10, inputMs: 200 });
    stats.playbackLagMs = 340;
    expect(stats.snapshot(context)).toEqual({
      chunks: 10,
      turnP50Ms: 5,
      turnP95Ms: 10,
      realTimeFactor: 0.1,
      appendP50Ms: 0.5,
      playbackLagMs: 340,
      ...context,
    });
  });

  it("is due for a metrics event after each METRICS_EVERY_MS of input, counted from the last one taken", () => {
    const stats = new SessionStats();
    const turns = METRICS_EVERY_MS / 200;
    for (let i = 0; i < turns - 1; i++) stats.recordTurn({ latencyMs: 1, turnMs: 1, appendMs: 1, inputMs: 200 });
    expect(stats.due).toBe(false);
    stats.recordTurn({ latencyMs: 1, turnMs: 1, appendMs: 1, inputMs: 200 });
    expect(stats.due).toBe(true);
    expect(stats.take(context).chunks).toBe(turns);
    expect(stats.due).toBe(false);
  });
});
