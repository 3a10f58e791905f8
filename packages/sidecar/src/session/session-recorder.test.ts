import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ClientEvent, ContextSource } from "@microturn/protocol";
import { afterEach, describe, expect, it } from "vitest";
import { readRecording } from "../replay.js";
import { MAX_UNWRITTEN_BYTES, SessionRecorder } from "./session-recorder.js";

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

const input = (seq: number, text: string) => ClientEvent.fromPartial({ event: { $case: "input", value: { seq, startMs: seq * 200, durationMs: 200, text } } });

describe("SessionRecorder", () => {
  it("writes client events and the context each boundary took, which replay reads back", async () => {
    dir = mkdtempSync(join(tmpdir(), "microturn-recorder-"));
    const recorder = new SessionRecorder(dir, "s1");
    recorder.record(input(0, "hi"));
    recorder.recordContext(1, [{ source: ContextSource.CONTEXT_SOURCE_BACKGROUND, text: "[background t1] done", refId: "t1" }]);
    recorder.recordContext(2, []);
    recorder.record(input(1, ""));
    const path = await recorder.close();
    expect(path).toBe(join(dir, "s1.jsonl"));
    const recording = readRecording(readFileSync(path, "utf8"));
    expect(recording.header).toMatchObject({ format: "microturn-recording/2", sessionId: "s1" });
    expect(recording.events.map((e) => (e.event?.$case === "input" ? e.event.value.seq : -1))).toEqual([0, 1]);
    expect([...recording.context!]).toEqual([[1, [{ source: ContextSource.CONTEXT_SOURCE_BACKGROUND, text: "[background t1] done", refId: "t1" }]]]);
  });

  it("stops, not the session, when the file falls too far behind (a disk that does not keep up): the lines wait in memory", async () => {
    dir = mkdtempSync(join(tmpdir(), "microturn-recorder-"));
    const errors: Error[] = [];
    const recorder = new SessionRecorder(dir, "s2", (err) => errors.push(err));
    const text = "x".repeat(1024 * 1024);
    // Written in one go, nothing reaches the disk before the loop ends: everything past the bound is what a slow disk leaves waiting.
    for (let seq = 0; seq < MAX_UNWRITTEN_BYTES / text.length + 4; seq++) recorder.record(input(seq, text));
    expect(recorder.recording).toBe(false);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.message).toMatch(/^the recording fell 16 MiB behind the session \(the disk does not keep up\); it stops here$/);
    expect(await recorder.close()).toBe("");
  });
});
