import type { ServerEvent } from "@microturn/protocol";
import { describe, expect, it } from "vitest";
import { Outbox } from "./outbox.js";

const ack = (seq: number) => ({ $case: "inputAck" as const, value: { seq, duplicate: false, queueDepth: 0 } });

describe("Outbox", () => {
  it("numbers events and replays exactly what a resumed stream missed", () => {
    const outbox = new Outbox(8);
    const first: ServerEvent[] = [];
    outbox.attach({ send: (e) => first.push(e) });
    for (let i = 0; i < 5; i++) outbox.push(ack(i));
    expect(first.map((e) => e.eventSeq)).toEqual([1, 2, 3, 4, 5]);
    outbox.detach();
    outbox.push(ack(5));
    const resumed: ServerEvent[] = [];
    expect(outbox.attach({ send: (e) => resumed.push(e) }, 3)).toBe(true);
    expect(resumed.map((e) => e.eventSeq)).toEqual([4, 5, 6]);
  });

  it("keeps at least its capacity through batched trims, and says when a resume asks for dropped events", () => {
    const outbox = new Outbox(4);
    for (let i = 0; i < 1000; i++) outbox.push(ack(i));
    const resumed: ServerEvent[] = [];
    expect(outbox.attach({ send: (e) => resumed.push(e) }, 996)).toBe(true);
    expect(resumed.map((e) => e.eventSeq)).toEqual([997, 998, 999, 1000]);
    expect(outbox.attach({ send: () => undefined }, 10)).toBe(false);
  });
});
