import { describe, expect, it } from "vitest";
import { createEchoEngine } from "../engines/echo/index.js";
import type { EngineSession } from "../engines/engine.js";
import { carryOverPrompt, needsRollover, openCarryingSession, rolloverHelps } from "./context-window.js";
import type { ConversationEntry } from "./ports.js";

const entries: ConversationEntry[] = [
  { role: "user", text: "hello   there", startMs: 0 },
  { role: "assistant", text: "hi", startMs: 400 },
  { role: "user", text: "what time is it", startMs: 1200 },
  { role: "assistant", text: "noon", startMs: 1600 },
];

describe("context window", () => {
  it("asks for a rollover when the next turn might not fit", () => {
    expect(needsRollover(100, 1000, 10, 8)).toBe(false);
    expect(needsRollover(960, 1000, 10, 8)).toBe(true);
    expect(needsRollover(950, 1000, 0, 40)).toBe(true);
    expect(needsRollover(10, 0, 10, 8)).toBe(false);
    expect(needsRollover(10, Number.POSITIVE_INFINITY, 10, 8)).toBe(false);
  });

  it("rolls over only when the sequence grew, not when the system prompt alone fills it", () => {
    expect(rolloverHelps(970, 968, 1024)).toBe(false);
    expect(rolloverHelps(300, 40, 1024)).toBe(true);
    expect(rolloverHelps(295, 40, 1024)).toBe(false);
  });

  it("carries the newest lines that fit, oldest first, and says what was left out", () => {
    const all = carryOverPrompt("Be brief.", entries, 10_000);
    expect(all.lines).toBe(4);
    expect(all.prompt).toBe(
      "Be brief.\n\nConversation so far:\n[0.0s] user: hello there\n[0.4s] assistant: hi\n[1.2s] user: what time is it\n[1.6s] assistant: noon",
    );
    const some = carryOverPrompt("", entries, 60);
    expect(some.lines).toBe(2);
    expect(some.prompt).toBe("Conversation so far (the 2 earliest lines are left out):\n[1.2s] user: what time is it\n[1.6s] assistant: noon");
    expect(carryOverPrompt("Be brief.", entries, 5)).toEqual({ prompt: "Be brief.", lines: 0 });
  });

  it("cuts the carried text until it takes at most a quarter of the capacity", async () => {
    // A byte-level tokenizer: one token a character, four times the first estimate.
    const opened: { prompt: string; closed: boolean }[] = [];
    const session = (prompt: string, capacity: number) => {
      const record = { prompt, closed: false };
      opened.push(record);
      return { positionTokens: prompt.length, stats: () => ({ capacityTokens: capacity }), close: async () => void (record.closed = true) } as unknown as EngineSession;
    };
    const old = session("", 400);
    const long: ConversationEntry[] = Array.from({ length: 40 }, (_, i) => ({ role: "user", text: `line ${i} has some words`, startMs: i * 200 }));
    const { fresh, carriedLines } = await openCarryingSession(old, "Be brief.", 9, long, async (prompt) => session(prompt, 400));
    expect(opened.length).toBe(5); // the old one, three too long, one that fits
    expect(fresh.positionTokens).toBeLessThanOrEqual(9 + 100);
    expect(carriedLines).toBeGreaterThan(0);
    expect(opened[4]!.prompt).toContain("line 39 has some words");
    expect(opened.map((o) => o.closed)).toEqual([false, true, true, true, false]);
  });

  it("carries nothing when even the shortest carried text does not fit", async () => {
    const engine = await createEchoEngine({ defaultCapacityTokens: 8 });
    const old = await engine.openSession({});
    const { fresh, carriedLines } = await openCarryingSession(old, "one two three four five", 5, entries, (prompt) => engine.openSession({ systemPrompt: prompt }));
    expect(carriedLines).toBe(0);
    expect(fresh.positionTokens).toBe(5);
  });
});
