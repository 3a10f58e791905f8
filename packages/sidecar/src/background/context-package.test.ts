import { describe, expect, it } from "vitest";
import { buildContextPackage, type ConversationEntry } from "./context-package.js";

const conversation: ConversationEntry[] = [
  { role: "user", text: "Hi, can you plan a trip to Lisbon?", startMs: 1_200, seq: 6 },
  { role: "assistant", text: "Sure, let me look into it.", startMs: 2_400, seq: 12 },
  { role: "tool", text: 'call get_time {} -> {"iso":"2026-01-01T10:00:00Z"}', startMs: 2_600 },
  { role: "user", text: "Three days, in May.", startMs: 12_400, seq: 62 },
];

describe("buildContextPackage", () => {
  it("explains the role, lists the conversation with times, and ends with the task", () => {
    const messages = buildContextPackage(conversation, "Draft a 3-day Lisbon itinerary for May.");
    expect(messages).toHaveLength(2);
    expect(messages[0]?.role).toBe("system");
    expect(messages[0]?.content).toContain("background model of a real-time interaction model");
    const body = messages[1]?.content as string;
    expect(body).toContain("[1.2s] user: Hi, can you plan a trip to Lisbon?");
    expect(body).toContain("[2.6s] tool: call get_time");
    expect(body).toContain("[12.4s] user: Three days, in May.");
    expect(body.trim().endsWith("Draft a 3-day Lisbon itinerary for May.")).toBe(true);
    expect(body.indexOf("[1.2s]")).toBeLessThan(body.indexOf("[12.4s]"));
  });

  it("adds application instructions and tool names to the system message", () => {
    const [system] = buildContextPackage([], "task", { instructions: "Answer in French.", toolNames: ["get_time", "calculator"] });
    expect(system?.content).toContain("Answer in French.");
    expect(system?.content).toContain("get_time, calculator");
  });

  it("drops the oldest middle first, keeps the start and the most recent, and says so", () => {
    const long: ConversationEntry[] = [];
    for (let i = 0; i < 500; i++) long.push({ role: i % 2 === 0 ? "user" : "assistant", text: `message number ${i} ${"x".repeat(60)}`, startMs: i * 1000 });
    const maxChars = 6_000;
    const messages = buildContextPackage(long, "Summarise.", { maxChars });
    const total = messages.reduce((n, m) => n + (m.content?.length ?? 0), 0);
    expect(total).toBeLessThanOrEqual(maxChars);
    const body = messages[1]?.content as string;
    expect(body).toContain("message number 0 ");
    expect(body).toContain("message number 499 ");
    expect(body).not.toContain("message number 250 ");
    const marker = /\[\.\.\. (\d+) conversation entries \(\d+ characters\) omitted/.exec(body);
    expect(marker).not.toBeNull();
    const kept = body.split("\n").filter((l) => /^\[\d+\.\ds\] (user|assistant):/.test(l)).length;
    expect(kept + Number(marker?.[1])).toBe(500);
    expect(body.trim().endsWith("Summarise.")).toBe(true);
  });

  it("clips a single huge entry and a huge task instead of overflowing", () => {
    const messages = buildContextPackage([{ role: "user", text: "y".repeat(50_000), startMs: 0 }], "z".repeat(50_000), { maxChars: 8_000 });
    const total = messages.reduce((n, m) => n + (m.content?.length ?? 0), 0);
    expect(total).toBeLessThanOrEqual(8_000);
    expect(messages[1]?.content).toContain("[...truncated]");
  });
});
