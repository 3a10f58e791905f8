import { afterEach, describe, expect, it, vi } from "vitest";
import { ToolRunner } from "./tool-runner.js";

const call = { callId: "c1", name: "stuck", argumentsJson: "{}", timeoutMs: 0, seq: 0 };

afterEach(() => {
  vi.useRealTimers();
});

describe("ToolRunner", () => {
  it("abortAll settles a call whose handler ignores its signal, and leaves no deadline timer behind", async () => {
    vi.useFakeTimers();
    const runner = new ToolRunner();
    let signal: AbortSignal | undefined;
    runner.register("stuck", { description: "never returns" }, (_args, context) => {
      signal = context.signal;
      return new Promise(() => undefined);
    });
    const result = runner.run(call);
    await Promise.resolve();
    expect(vi.getTimerCount()).toBe(1);
    runner.abortAll();
    expect(signal?.aborted).toBe(true);
    expect(vi.getTimerCount()).toBe(0);
    await expect(result).resolves.toMatchObject({ callId: "c1", isError: true, outputJson: expect.stringMatching(/aborted/) });
  });

  it("still answers a timeout at the deadline, not as an abort", async () => {
    vi.useFakeTimers();
    const runner = new ToolRunner();
    runner.register("stuck", { description: "never returns", timeoutMs: 50 }, () => new Promise(() => undefined));
    const result = runner.run(call);
    await vi.advanceTimersByTimeAsync(50);
    await expect(result).resolves.toMatchObject({ isError: true, outputJson: expect.stringMatching(/timed out after 50 ms/) });
  });
});
