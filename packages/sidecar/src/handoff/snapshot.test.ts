import { ContextSource, DeliveryMode, SessionSnapshot, TaskStatus } from "@microturn/protocol";
import { describe, expect, it } from "vitest";
import type { MovedSession } from "../session/interaction-session.js";
import { fromSnapshot, toSnapshot, type SnapshotParts } from "./snapshot.js";

const config = {
  inputModalities: [],
  outputMode: 0,
  inputSampleRateHz: 16000,
  outputSampleRateHz: 16000,
  voice: "",
  instructions: "be brief",
  tools: [{ name: "lookup", description: "looks up", parametersJson: "{}", timeoutMs: 0 }],
  defaultDelivery: 0,
  maxOutputTokensPerTurn: 0,
  chunkDurationMs: 200,
  unsupportedInput: 0,
  labels: { team: "x" },
  record: false,
};

const moved: MovedSession = {
  nextSeq: 7,
  inputTimeMs: 1400,
  chunks: 6,
  conversation: [
    { role: "user", text: "hello", startMs: 0, seq: 0 },
    { role: "assistant", text: "hi", startMs: 200.5, seq: 0 },
    { role: "system", text: "[user interrupted at 0.3s]", startMs: 300 },
  ],
  pending: [
    { item: { source: ContextSource.CONTEXT_SOURCE_TOOL, text: "[tool lookup result] 42", refId: "lookup" }, delivery: DeliveryMode.DELIVERY_MODE_INTERRUPT, readyAtMs: 1200 },
    {
      item: { source: ContextSource.CONTEXT_SOURCE_BACKGROUND, text: "[background task_1] done", refId: "task_1" },
      delivery: DeliveryMode.DELIVERY_MODE_WHEN_IDLE,
      readyAtMs: 1000,
      update: { taskId: "task_1", status: TaskStatus.TASK_STATUS_DONE, content: "done", delivery: DeliveryMode.DELIVERY_MODE_WHEN_IDLE, errorMessage: "", deliveredAtSeq: 0, fromModel: true, task: "t" },
    },
  ],
  pendingCalls: [{ callId: "call_2", name: "lookup", remainingMs: 1234 }],
  callsMade: 2,
  tasks: [{ taskId: "task_2", task: "find it", delivery: DeliveryMode.DELIVERY_MODE_SILENT, fromModel: false, remainingMs: 60_000 }],
  taskIdsMade: 2,
  playedUpToMs: 900,
  outputEndMs: 1250.25,
  queuedInput: [{ seq: 6, startMs: 1200, durationMs: 200, text: "more", toolChoice: "", userSpeaking: true, frames: [], patches: [] }],
};

const parts: SnapshotParts = {
  sessionId: "s-1",
  config,
  events: [{ eventSeq: 12, event: { $case: "inputAck", value: { seq: 6, duplicate: false, queueDepth: 0 } } }],
  lastEventSeq: 12,
  moved,
  recordingParts: 2,
};

describe("session snapshot", () => {
  it("carries a moving session through the wire unchanged", () => {
    const wire = SessionSnapshot.decode(SessionSnapshot.encode(toSnapshot(parts)).finish());
    expect(fromSnapshot(wire)).toEqual(parts);
  });

  it("refuses a snapshot the session layer could not rely on, naming what is wrong", () => {
    const good = toSnapshot(parts);
    expect(() => fromSnapshot({ ...good, sessionId: "" })).toThrow(/no session id/);
    expect(() => fromSnapshot({ ...good, config: undefined })).toThrow(/no session config/);
    expect(() => fromSnapshot({ ...good, lastEventSeq: 11 })).toThrow(/event 12 is past its last event seq 11/);
    expect(() => fromSnapshot({ ...good, conversation: [{ role: "narrator", text: "x", startMs: 0 }] })).toThrow(/unknown role "narrator"/);
  });
});
