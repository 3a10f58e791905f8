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

  it("gives several quantiles from one sort, and the same after more samples", () => {
    const stats = new LatencyStats(8);
    for (const v of [5, 3, 9, 1]) stats.add(v);
    expect(stats.quantiles([0, 0.5, 1])).toEqual([1, 3, 9]);
    for (const v of [7, 2, 8, 6, 4, 10]) stats.add(v);
    // The ring holds the last 8: 9 1 7 2 8 6 4 10.
    expect(stats.quantiles([0, 0.5, 1])).toEqual([1, 6, 10]);
    expect(stats.quantile(0.25)).toBe(2);
  });
});
