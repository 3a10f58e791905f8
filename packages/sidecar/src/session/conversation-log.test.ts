import { describe, expect, it } from "vitest";
import { ConversationLog } from "./conversation-log.js";
import type { ConversationEntry } from "./ports.js";

const line = (i: number): ConversationEntry => ({ role: i % 2 ? "assistant" : "user", text: `line ${i} `.padEnd(84, "x"), startMs: i * 200, seq: i });
const chars = (lines: readonly ConversationEntry[]) => lines.reduce((n, e) => n + e.text.length + 16, 0);

describe("ConversationLog", () => {
  it("keeps every line while under its bound", () => {
    const log = new ConversationLog(10_000);
    for (let i = 0; i < 50; i++) log.push(line(i));
    expect(log.length).toBe(50);
    expect(log.snapshot().map((e) => e.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i));
  });

  it("past its bound keeps the start and the newest lines, and says how much is gone", () => {
    const log = new ConversationLog(10_000); // 100 characters a line: about 100 lines
    for (let i = 0; i < 10_000; i++) log.push(line(i));
    const lines = log.snapshot();
    expect(chars(lines)).toBeLessThanOrEqual(11_000);
    // The start: a quarter of the bound.
    expect(lines.slice(0, 25).map((e) => e.seq)).toEqual(Array.from({ length: 25 }, (_, i) => i));
    const marker = lines[25]!;
    expect(marker.role).toBe("system");
    const omitted = Number(/^\[(\d+) earlier lines/.exec(marker.text)![1]);
    expect(marker.startMs).toBe(25 * 200);
    // The newest lines, in order, with nothing missing between the marker and the end.
    const tail = lines.slice(26).map((e) => e.seq!);
    expect(tail[tail.length - 1]).toBe(9_999);
    expect(tail).toEqual(Array.from({ length: tail.length }, (_, i) => 9_999 - tail.length + 1 + i));
    expect(25 + omitted + tail.length).toBe(10_000);
  });

  it("filters without changing what it keeps", () => {
    const log = new ConversationLog();
    for (let i = 0; i < 4; i++) log.push(line(i));
    expect(log.filter((e) => e.seq !== 3).map((e) => e.seq)).toEqual([0, 1, 2]);
    expect(log.length).toBe(4);
  });
});
