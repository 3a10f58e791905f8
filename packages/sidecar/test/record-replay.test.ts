// Recording a session to JSONL and replaying it against a fresh engine gives
// the same micro-turns; /metrics and /healthz report what happened.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { ClientEvent, DeliveryMode, ErrorCode, PROTOCOL_VERSION, TaskStatus } from "@microturn/protocol";
import { afterEach, describe, expect, it } from "vitest";
import { startSidecar, type Sidecar } from "../src/app.js";
import type { BackgroundClient, BackgroundDelta } from "../src/background/client.js";
import { BackgroundError } from "../src/background/errors.js";
import { loadConfig } from "../src/config.js";
import { createLogger } from "../src/logger.js";
import { readRecording, readRecordingFile, readSessionRecording, RecordingError, replayEvents } from "../src/replay.js";
import { FakeEngine } from "./helpers/fake-engine.js";
import { TestClient } from "./helpers/test-client.js";

let sidecar: Sidecar | undefined;
let dir: string | undefined;
const clients: TestClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await sidecar?.shutdown();
  sidecar = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

const reply = (chunk: { seq: number; text?: string }) => (chunk.text ? `${chunk.seq}:${chunk.text}` : "");

describe("record and replay", () => {
  it("replays a recorded session to the same outputs on a fresh engine", async () => {
    dir = mkdtempSync(join(tmpdir(), "microturn-rec-"));
    const config = loadConfig(["--port", "0", "--metrics-port", "0", "--record-dir", dir, "--background", "none", "--drain-ms", "0", "--max-output-tokens", "64"], {});
    const recordedEngine = new FakeEngine({ reply });
    sidecar = await startSidecar(config, { engine: recordedEngine, logger: createLogger("error") });
    const client = new TestClient(sidecar.server.grpcAddress);
    clients.push(client);
    client.start({ record: true });
    const script = ["hi", "", "how are you", "", "bye"];
    script.forEach((text, seq) => client.input(seq, text));
    await client.waitCount("output", script.length);
    client.send({ $case: "interrupt", value: { playedUpToMs: 700 } });
    client.input(5, "again");
    await client.waitCount("output", 6);

    // Metrics saw the micro-turns.
    const metrics = await (await fetch(`http://${sidecar.server.httpAddress}/metrics`)).text();
    expect(metrics).toMatch(/microturn_chunks_total 6/);
    expect(metrics).toMatch(/microturn_turn_latency_ms_count 6/);
    const health = await fetch(`http://${sidecar.server.httpAddress}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ serving: true, sessions: 1 });

    client.send({ $case: "end", value: { reason: "done" } });
    await client.waitFor(() => client.ended, "end");
    const recordingPath = client.of("ended")[0]!.recordingPath;
    expect(recordingPath.startsWith(dir)).toBe(true);
    const original = client.of("output").map((o) => [o.seq, o.text, o.startMs, o.durationMs]);
    await sidecar.shutdown();
    sidecar = undefined;

    const { header, events } = readRecording(readFileSync(recordingPath, "utf8"));
    expect(header.sessionId).toBe(client.of("started")[0]!.sessionId);
    expect(events.map((e) => e.event?.$case)).toEqual(["start", "input", "input", "input", "input", "input", "interrupt", "input", "end"]);

    const engine = new FakeEngine({ reply });
    const replayed = await replayEvents(events, { ...config, recordDir: "" }, { engine, logger: createLogger("error") });
    expect(replayed.outputs.map((o) => [o.seq, o.text, o.startMs, o.durationMs])).toEqual(original);
    // Both engines ended with the same sequence: the barge-in at 0.7 s kept one heard
    // character of the answer to seq 2 and dropped the unheard answers after it.
    expect(recordedEngine.sessions[0]!.text).toBe("<0>hi0:hi<1><2>how are you2<3><4>bye<5>again5:again");
    expect(engine.sessions[0]!.text).toBe(recordedEngine.sessions[0]!.text);
  });

  it("refuses a file that is not a recording", () => {
    expect(() => readRecording("")).toThrow(RecordingError);
    expect(() => readRecording('{"format":"other"}\n')).toThrow(/not a microturn recording \(format: "other"; this sidecar reads microturn-recording\/1, microturn-recording\/2\)/);
    expect(() => readRecording(`${HEADER}\nnot json\n${line(input(0))}\n`)).toThrow(/line 2 is not JSON/);
  });

  it("names the line of a recording that is JSON but not what a recording holds (they once threw raw TypeErrors or hung)", () => {
    for (const header of ["null", "5", "[]", '{"format":"microturn-recording/1"}']) {
      expect(() => readRecording(`${header}\n${line(input(0))}\n`), header).toThrow(/^recording line 1: /);
    }
    const bad = ["null", "5", "{}", '{"seq":"abc"}', '{"tMs":0,"event":{}}', '{"tMs":"x","event":{"input":{"seq":1}}}', '{"tMs":0,"event":{"input":{"seq":"abc"}}}'];
    for (const text of bad) {
      let error: unknown;
      try {
        readRecording(`${HEADER}\n${line(start())}\n${text}\n${line(input(0))}\n`);
      } catch (err) {
        error = err;
      }
      expect(error, text).toBeInstanceOf(RecordingError);
      expect((error as Error).message, text).toMatch(/^recording line 3: /);
    }
    expect(() => readRecording(`${HEADER}\n{"tMs":0,"event":{"input":{"seq":"abc"}}}\n`)).toThrow(/input\.seq is not a number/);
  });

  it("takes a cut-off last line (the sidecar stopped while writing it) with a warning; a broken line before others is still an error", async () => {
    const good = `${HEADER}\n${line(start())}\n${line(input(0))}\n`;
    const cut = `${good}{"tMs":412,"event":{"input":{"se`;
    const read = readRecording(cut);
    expect(read.events.map((e) => e.event?.$case)).toEqual(["start", "input"]);
    expect(read.warnings).toEqual([expect.stringMatching(/line 4 .*cut off/)]);
    expect(readRecording(good).warnings).toEqual([]);
    expect(() => readRecording(`${cut}\n${line(input(1))}\n`)).toThrow(/line 4 is not JSON/);
    // The file reader streams line by line (a whole-file string stops at 512 MiB) and decides the same way.
    dir = mkdtempSync(join(tmpdir(), "microturn-rec-"));
    writeFileSync(join(dir, "cut.jsonl"), cut);
    const fromFile = await readRecordingFile(join(dir, "cut.jsonl"));
    expect(fromFile.events).toEqual(read.events);
    expect(fromFile.warnings).toEqual(read.warnings);
    writeFileSync(join(dir, "middle.jsonl"), `${cut}\n${line(input(1))}\n`);
    await expect(readRecordingFile(join(dir, "middle.jsonl"))).rejects.toThrow(RecordingError);
    await expect(readRecordingFile(join(dir, "missing.jsonl"))).rejects.toMatchObject({ code: "ENOENT" });
  });
});

describe("replay", () => {
  const config = () => loadConfig(["--port", "0", "--metrics-port=-1", "--background", "none", "--drain-ms", "0", "--max-output-tokens", "64"], {});

  it("replays on a sidecar whose config asks clients for an API key (its own client sent none and waited 60 s a chunk)", async () => {
    const engine = new FakeEngine({ reply });
    const result = await replayEvents([start(), input(0, "hi"), input(1, "there"), end()], { ...config(), apiKey: "secret" }, { engine, logger: createLogger("error") });
    expect(result.outputs.map((o) => o.text)).toEqual(["0:hi", "1:there"]);
    expect(result.problems).toEqual([]);
  }, 10_000);

  it("replays on its own plaintext server whatever TLS, socket and peer settings the sidecar's environment has", async () => {
    const engine = new FakeEngine({ reply });
    const deployed = loadConfig(
      ["--port", "0", "--metrics-port=-1", "--background", "none", "--tls-cert", "/nonexistent/cert.pem", "--tls-key", "/nonexistent/key.pem", "--socket", "/nonexistent/dir/s.sock"],
      {},
    );
    const result = await replayEvents([start(), input(0, "hi"), end()], deployed, { engine, logger: createLogger("error") });
    expect(result.outputs.map((o) => o.text)).toEqual(["0:hi"]);
    expect(result.problems).toEqual([]);
  }, 10_000);

  it("stops as soon as the stream ends early, and says why", async () => {
    const started = Date.now();
    const result = await replayEvents([start("9.0"), input(0), input(1), input(2), end()], config(), { engine: new FakeEngine({ reply }), logger: createLogger("error") });
    expect(Date.now() - started).toBeLessThan(5000);
    expect(result.status?.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(result.unsent).toBe(4);
    expect(result.problems.join("\n")).toMatch(/FAILED_PRECONDITION.*protocol "9\.0"/);
    expect(result.problems.join("\n")).toMatch(/4 recorded events were not sent/);
  }, 10_000);

  it("replays a recorded seq gap (0, 2, 1, 2 from a client that repaired it) without waiting out the gap", async () => {
    const engine = new FakeEngine({ reply });
    const started = Date.now();
    const result = await replayEvents([start(), input(0, "a"), input(2, "c"), input(1, "b"), input(2, "c"), end()], config(), { engine, logger: createLogger("error") });
    expect(Date.now() - started).toBeLessThan(5000);
    expect(result.outputs.map((o) => o.text)).toEqual(["0:a", "1:b", "2:c"]);
    const errors = result.events.flatMap((e) => (e.event?.$case === "error" ? [e.event.value] : []));
    expect(errors.map((e) => [e.code, e.seq])).toEqual([[ErrorCode.ERROR_CODE_SEQ_GAP, 1]]);
    expect(result.timedOut).toEqual([]);
    // The live session's SEQ_GAP is reproduced, and reported.
    expect(result.problems).toEqual([expect.stringMatching(/1 error event.*SEQ_GAP/)]);
  }, 10_000);

  it("reports an input that got no answer in time instead of skipping it silently", async () => {
    const engine = new FakeEngine({ reply, delayMs: 400 });
    const result = await replayEvents([start(), input(0, "slow"), end()], config(), { engine, logger: createLogger("error") }, { answerTimeoutMs: 50 });
    expect(result.timedOut).toEqual([0]);
    expect(result.problems).toContainEqual(expect.stringMatching(/input seq 0 got no answer within 50 ms/));
  }, 10_000);

  it("replays a session with a client-side tool: the recorded results answer the replay's calls", async () => {
    dir = mkdtempSync(join(tmpdir(), "microturn-rec-"));
    const recordConfig = loadConfig(["--port", "0", "--metrics-port=-1", "--record-dir", dir, "--background", "none", "--drain-ms", "0", "--max-output-tokens", "400"], {});
    const toolReply = (chunk: { seq: number }) => (chunk.seq === 0 ? `<tool_call>${JSON.stringify({ name: "get_weather", arguments: { city: "Lisbon" } })}</tool_call>` : "");
    const tools = [{ name: "get_weather", description: "weather", parametersJson: '{"type":"object"}', timeoutMs: 2000 }];
    sidecar = await startSidecar(recordConfig, { engine: new FakeEngine({ reply: toolReply }), logger: createLogger("error") });
    const client = new TestClient(sidecar.server.grpcAddress);
    clients.push(client);
    client.start({ record: true, tools });
    client.input(0, "weather?");
    await client.waitCount("toolCall", 1);
    client.send({ $case: "toolResult", value: { callId: client.of("toolCall")[0]!.callId, outputJson: '{"sky":"sunny"}', isError: false } });
    await new Promise((r) => setTimeout(r, 50));
    client.input(1, "");
    await client.waitCount("output", 2);
    client.send({ $case: "end", value: { reason: "done" } });
    await client.waitFor(() => client.ended, "end");
    expect(client.of("error")).toEqual([]);
    const { events } = await readRecordingFile(client.of("ended")[0]!.recordingPath);

    const engine = new FakeEngine({ reply: toolReply });
    const replayed = await replayEvents(events, recordConfig, { engine, logger: createLogger("error") });
    expect(replayed.problems).toEqual([]);
    expect(replayed.events.flatMap((e) => (e.event?.$case === "toolCall" ? [e.event.value.callId] : []))).toEqual(client.of("toolCall").map((c) => c.callId));
    expect(engine.sessions[0]!.appended[1]!.context!.map((c) => c.text).join()).toContain("sunny");
  }, 15_000);
});

/** A background model that answers `answer` at once, or (undefined) never: it waits until the task is cancelled. */
function backgroundModel(answer: string | undefined): BackgroundClient {
  return {
    async *streamChat(_messages, options): AsyncIterable<BackgroundDelta> {
      if (answer === undefined) {
        await new Promise<never>((_, reject) => options?.signal?.addEventListener("abort", () => reject(new BackgroundError("aborted", "cancelled"))));
      }
      yield { type: "content", text: answer! };
      yield { type: "done", finishReason: "stop" };
    },
    close: async () => undefined,
  };
}

describe("replay with the recorded context", () => {
  /** Records a session whose background result entered the context at seq 2; returns its recording and the engine's sequence. */
  async function recordDelegation(): Promise<{ recordingPath: string; sequence: string; config: ReturnType<typeof loadConfig> }> {
    dir = mkdtempSync(join(tmpdir(), "microturn-rec-"));
    const config = loadConfig(["--port", "0", "--metrics-port=-1", "--record-dir", dir, "--drain-ms", "0", "--max-output-tokens", "64"], {});
    const engine = new FakeEngine({ reply });
    sidecar = await startSidecar(config, { engine, background: backgroundModel("the river café, 8 pm"), logger: createLogger("error") });
    const client = new TestClient(sidecar.server.grpcAddress);
    clients.push(client);
    client.start({ record: true });
    client.input(0, "find dinner");
    client.input(1, "");
    await client.waitCount("output", 2);
    client.send({ $case: "delegate", value: { taskId: "dinner", task: "find a dinner spot", delivery: DeliveryMode.DELIVERY_MODE_INTERRUPT, timeoutMs: 0 } });
    await client.waitFor(() => client.of("background").some((u) => u.status === TaskStatus.TASK_STATUS_DONE), "the task's result");
    for (const seq of [2, 3]) client.input(seq, "");
    await client.waitCount("output", 4);
    client.send({ $case: "end", value: { reason: "done" } });
    await client.waitFor(() => client.ended, "end");
    expect(client.of("error")).toEqual([]);
    expect(client.of("background").find((u) => u.deliveredAtSeq > 0)?.deliveredAtSeq).toBe(2);
    const sequence = engine.sessions[0]!.text;
    expect(sequence).toContain("<2>");
    expect(sequence.indexOf("the river café")).toBeLessThan(sequence.indexOf("<2>"));
    expect(sequence.indexOf("the river café")).toBeGreaterThan(sequence.indexOf("<1>"));
    const recordingPath = client.of("ended")[0]!.recordingPath;
    await sidecar.shutdown();
    sidecar = undefined;
    return { recordingPath, sequence, config };
  }

  it("gives the model the recorded background result at the recorded micro-turn, though the replay's background model never answers", async () => {
    const { recordingPath, sequence, config } = await recordDelegation();
    const recording = await readSessionRecording(recordingPath);
    expect(recording.header.format).toBe("microturn-recording/2");
    expect([...recording.context!.keys()]).toEqual([2]);
    expect(recording.context!.get(2)![0]).toMatchObject({ refId: "dinner", text: expect.stringContaining("the river café, 8 pm") });

    const engine = new FakeEngine({ reply });
    const replayed = await replayEvents(recording.events, { ...config, recordDir: "" }, { engine, background: backgroundModel(undefined), logger: createLogger("error") }, { context: recording.context! });
    expect(replayed.problems).toEqual([]);
    expect(engine.sessions[0]!.text).toBe(sequence);

    // Without it (--context live), what the model reads depends on the replay's background model: here, nothing comes.
    const live = new FakeEngine({ reply });
    await replayEvents(recording.events, { ...config, recordDir: "" }, { engine: live, background: backgroundModel(undefined), logger: createLogger("error") });
    expect(live.sessions[0]!.text).not.toContain("the river café");
  }, 20_000);
});

const HEADER = '{"format":"microturn-recording/1","sessionId":"s","startedAt":"2024-01-01T00:00:00.000Z"}';
const line = (event: ClientEvent) => JSON.stringify({ tMs: 0, event: ClientEvent.toJSON(event) });
const start = (protocolVersion = PROTOCOL_VERSION) =>
  ClientEvent.fromPartial({ event: { $case: "start", value: { protocolVersion, config: { chunkDurationMs: 200 } } } });
const input = (seq: number, text = "") =>
  ClientEvent.fromPartial({ event: { $case: "input", value: { seq, startMs: seq * 200, durationMs: 200, text } } });
const end = () => ClientEvent.fromPartial({ event: { $case: "end", value: { reason: "done" } } });

describe("a recording in parts (a session that moved between sidecars)", () => {
  const header = (part?: number, sessionId = "s1") => JSON.stringify({ format: "microturn-recording/1", sessionId, startedAt: "2026-11-26T00:00:00Z", ...(part ? { part } : {}) });
  const input = (seq: number, text: string) => JSON.stringify({ tMs: seq * 200, event: ClientEvent.toJSON({ eventId: "", event: { $case: "input", value: { seq, startMs: seq * 200, durationMs: 200, text, toolChoice: "", userSpeaking: false, frames: [], patches: [] } } }) });

  it("reads the parts beside the first, in order, up to the first one missing", async () => {
    dir = mkdtempSync(join(tmpdir(), "microturn-rec-"));
    writeFileSync(join(dir, "s1.jsonl"), [header(), input(0, "a")].join("\n"));
    writeFileSync(join(dir, "s1.part2.jsonl"), [header(2), input(1, "b")].join("\n"));
    writeFileSync(join(dir, "s1.part3.jsonl"), [header(3), input(2, "c"), "{cut"].join("\n"));
    writeFileSync(join(dir, "s1.part5.jsonl"), [header(5), input(9, "never read")].join("\n"));
    const recording = await readSessionRecording(join(dir, "s1.jsonl"));
    expect(recording.files.map((f) => f.slice(dir!.length + 1))).toEqual(["s1.jsonl", "s1.part2.jsonl", "s1.part3.jsonl"]);
    expect(recording.events.map((e) => (e.event?.$case === "input" ? e.event.value.text : ""))).toEqual(["a", "b", "c"]);
    // A part after the gap is not replayed, and that is said (the replay then exits 1).
    expect(recording.missingPart).toBe(4);
    expect(recording.warnings).toEqual([
      expect.stringMatching(/s1\.part3\.jsonl: recording line 3 is not JSON and is the last line/),
      "part 4 of session s1 is missing; not replayed after it: s1.part5.jsonl",
    ]);
  });

  it("replays on the results as they arrive when a part kept no context (written by an older sidecar), and names it", async () => {
    dir = mkdtempSync(join(tmpdir(), "microturn-rec-"));
    const v2 = (part?: number) => header(part).replace("microturn-recording/1", "microturn-recording/2");
    const context = (seq: number) => JSON.stringify({ tMs: 0, context: { seq, items: [{ source: "CONTEXT_SOURCE_TOOL", text: "[tool calc result] 42", refId: "calc" }] } });
    writeFileSync(join(dir, "s1.jsonl"), [v2(), input(0, "a"), context(1), input(1, "b")].join("\n"));
    writeFileSync(join(dir, "s1.part2.jsonl"), [v2(2), context(1), input(2, "c")].join("\n"));
    const whole = await readSessionRecording(join(dir, "s1.jsonl"));
    // Seq 1 ran on both sidecars (cut by the move, run again on the taker): the model had both.
    expect(whole.context!.get(1)!.map((item) => item.refId)).toEqual(["calc", "calc"]);
    expect(whole.noContextIn).toBeUndefined();
    writeFileSync(join(dir, "s1.part2.jsonl"), [header(2), input(2, "c")].join("\n"));
    const mixed = await readSessionRecording(join(dir, "s1.jsonl"));
    expect(mixed.context).toBeUndefined();
    expect(mixed.noContextIn).toBe(join(dir, "s1.part2.jsonl"));
  });

  it("warns when a part ends before the next one starts (its sidecar stopped writing it early)", async () => {
    dir = mkdtempSync(join(tmpdir(), "microturn-rec-"));
    writeFileSync(join(dir, "s1.jsonl"), [header(), input(0, "a"), input(1, "b")].join("\n"));
    writeFileSync(join(dir, "s1.part2.jsonl"), [header(2), input(1, "b again"), input(2, "c")].join("\n"));
    expect((await readSessionRecording(join(dir, "s1.jsonl"))).warnings).toEqual([]);
    writeFileSync(join(dir, "s1.part2.jsonl"), [header(2), input(5, "f")].join("\n"));
    expect((await readSessionRecording(join(dir, "s1.jsonl"))).warnings).toEqual([
      expect.stringMatching(/s1\.part2\.jsonl starts at input seq 5, but the parts before it end at seq 1: part 1 stopped early/),
    ]);
  });

  it("refuses a later part given as the recording, and a part whose header does not match its name", async () => {
    dir = mkdtempSync(join(tmpdir(), "microturn-rec-"));
    writeFileSync(join(dir, "s1.part2.jsonl"), [header(2), input(1, "b")].join("\n"));
    await expect(readSessionRecording(join(dir, "s1.part2.jsonl"))).rejects.toThrow(/is part 2 of session s1's recording: replay its first part, s1\.jsonl/);
    writeFileSync(join(dir, "s1.jsonl"), [header(), input(0, "a")].join("\n"));
    writeFileSync(join(dir, "s1.part2.jsonl"), [header(2, "s2"), input(1, "b")].join("\n"));
    await expect(readSessionRecording(join(dir, "s1.jsonl"))).rejects.toThrow(RecordingError);
    expect(() => readRecording([JSON.stringify({ format: "microturn-recording/1", sessionId: "s1", startedAt: "x", part: 1 })].join("\n"))).toThrow(/part must be an integer from 2/);
  });
});
