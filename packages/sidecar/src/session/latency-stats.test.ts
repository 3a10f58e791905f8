import { describe, expect, it } from "vitest";
import { LatencyStats } from "./latency-stats.js";

describe("LatencyStats", () => {
  it("gives nearest-rank quantiles of what it holds", () => {
    const stats = new LatencyStats();
    expect(stats.quantile(0.5)).toBe(0);
    for (let v = 1; v <= 100; v++) stats.add(v);
    expect(stats.size).toBe(100);
    expect(stats.quantile(0.5)).toBe(50);
    expect(stats.quantile(0.99)).toBe(99);
    expect(stats.quantile(1)).toBe(100);
    expect(stats.total).toBe(5050);
  });

  it("keeps only the most recent samples once full", () => {
    const stats = new LatencyStats(4);
    for (const v of [100, 100, 100, 100, 1, 2, 3]) stats.add(v);
    expect(stats.size).toBe(4);
    expect(stats.quantile(0)).toBe(1);
    expect(stats.quantile(1)).toBe(100);
    stats.add(4);
    expect(stats.quantile(1)).toBe(4);
  });
});
