// Recording a session to JSONL and replaying it against a fresh engine gives
// the same micro-turns; /metrics and /healthz report what happened.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { startSidecar, type Sidecar } from "../src/app.js";
import { loadConfig } from "../src/config.js";
import { createLogger } from "../src/logger.js";
import { readRecording, RecordingError, replayEvents } from "../src/replay.js";
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
    expect(() => readRecording('{"format":"other"}\n')).toThrow(/not a microturn-recording/);
    dir = mkdtempSync(join(tmpdir(), "microturn-rec-"));
    writeFileSync(join(dir, "bad.jsonl"), '{"format":"microturn-recording/1","sessionId":"x","startedAt":"t"}\nnot json\n');
    expect(() => readRecording(readFileSync(join(dir!, "bad.jsonl"), "utf8"))).toThrow(/line 2 is not JSON/);
  });
});
