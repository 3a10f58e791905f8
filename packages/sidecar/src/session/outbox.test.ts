import type { ServerEvent } from "@microturn/protocol";
import { describe, expect, it } from "vitest";
import { Outbox } from "./outbox.js";

const ack = (seq: number) => ({ $case: "inputAck" as const, value: { seq, duplicate: false, queueDepth: 0 } });

describe("Outbox", () => {
  it("numbers events and replays exactly what a resumed stream missed", () => {
    const outbox = new Outbox({ capacity: 8 });
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
    const outbox = new Outbox({ capacity: 4 });
    for (let i = 0; i < 1000; i++) outbox.push(ack(i));
    const resumed: ServerEvent[] = [];
    expect(outbox.attach({ send: (e) => resumed.push(e) }, 996)).toBe(true);
    expect(resumed.map((e) => e.eventSeq)).toEqual([997, 998, 999, 1000]);
    // A refused resume attaches and sends nothing; the stream that was attached stays attached.
    const current: ServerEvent[] = [];
    const currentSink = { send: (e: ServerEvent) => current.push(e) };
    outbox.attach(currentSink);
    const refused: ServerEvent[] = [];
    const refusedSink = { send: (e: ServerEvent) => refused.push(e) };
    expect(outbox.canReplayAfter(10)).toBe(false);
    expect(outbox.attach(refusedSink, 10)).toBe(false);
    outbox.push(ack(1000));
    expect(refused).toEqual([]);
    expect(current.map((e) => e.eventSeq)).toEqual([1001]);
    // Detaching a stream that is not the attached one changes nothing.
    expect(outbox.detach(refusedSink)).toBe(false);
    expect(outbox.attached).toBe(true);
    expect(outbox.detach(currentSink)).toBe(true);
    expect(outbox.attached).toBe(false);
  });

  it("while attached, drops events past their age; while detached, keeps them for the resume", () => {
    let now = 0;
    const outbox = new Outbox({ capacity: 4096, keepMs: 60_000, now: () => now });
    outbox.attach({ send: () => undefined });
    // 11 events a second for five minutes: a 5 chunks/s session's acks, outputs and metrics.
    for (; now < 300_000; now += 1000 / 11) outbox.push(ack(0));
    expect(outbox.size).toBeLessThanOrEqual(11 * 60 + 32);
    expect(outbox.size).toBeGreaterThanOrEqual(11 * 60 - 1);
    const last = outbox.lastEventSeq;
    outbox.detach();
    for (let i = 0; i < 2000; i++, now += 1000 / 11) outbox.push(ack(1));
    const resumed: ServerEvent[] = [];
    expect(outbox.attach({ send: (e) => resumed.push(e) }, last)).toBe(true);
    expect(resumed.map((e) => e.eventSeq)).toEqual(Array.from({ length: 2000 }, (_, i) => last + 1 + i));
    // A resume from further back than an attached stream keeps is refused, not served with a gap.
    expect(outbox.attach({ send: () => undefined }, last - 2000)).toBe(false);
  });

  it("while attached, drops output audio older than audioKeepMs from what it keeps (text stays), never from what it sent", () => {
    let now = 0;
    const outbox = new Outbox({ keepMs: 60_000, audioKeepMs: 10_000, now: () => now });
    const sent: ServerEvent[] = [];
    outbox.attach({ send: (e) => sent.push(e) });
    const spoken = (seq: number) => ({
      $case: "output" as const,
      value: { seq, startMs: seq * 200, durationMs: 200, text: `t${seq}`, audio: { sampleRateHz: 16000, channels: 1, pcm16: new Uint8Array(6400) }, silent: false, latencyMs: 1, finishReason: 0 },
    });
    for (let seq = 0; seq < 100; seq++, now += 200) outbox.push(spoken(seq));
    expect(sent.every((e) => e.event?.$case === "output" && e.event.value.audio !== undefined)).toBe(true);
    const resumed: ServerEvent[] = [];
    outbox.detach();
    expect(outbox.attach({ send: (e) => resumed.push(e) }, 0)).toBe(true);
    const withAudio = resumed.filter((e) => e.event?.$case === "output" && e.event.value.audio !== undefined).map((e) => e.eventSeq);
    // 20 s of turns: the last ~10 s keep their audio, every turn keeps its text.
    expect(resumed.map((e) => (e.event?.$case === "output" ? e.event.value.text : ""))).toEqual(Array.from({ length: 100 }, (_, i) => `t${i}`));
    expect(withAudio.length).toBeGreaterThanOrEqual(50);
    expect(withAudio.length).toBeLessThanOrEqual(51);
    expect(withAudio.at(-1)).toBe(100);
  });
});
