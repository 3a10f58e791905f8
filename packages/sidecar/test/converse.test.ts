// The Converse service over a real gRPC socket, on a deterministic test engine:
// ordering, acks, duplicates, gaps, bad input, barge-in rewind, resume, auth.
import * as grpc from "@grpc/grpc-js";
import { ErrorCode, Modality, PROTOCOL_VERSION, UnsupportedInput } from "@microturn/protocol";
import { afterEach, describe, expect, it } from "vitest";
import { createLogger } from "../src/logger.js";
import { SidecarMetrics } from "../src/metrics.js";
import { startServer, type RunningServer } from "../src/server.js";
import { SessionHub } from "../src/session/session-hub.js";
import { SpinWait } from "../src/session/spin-wait.js";
import { FakeEngine, type FakeEngineOptions } from "./helpers/fake-engine.js";
import { TestClient } from "./helpers/test-client.js";

let running: RunningServer | undefined;
const clients: TestClient[] = [];

async function setup(
  engineOptions: FakeEngineOptions = {},
  options: { apiKey?: string; resumeGraceMs?: number; maxQueuedChunks?: number; spinWait?: SpinWait; maxOutputTokensCeiling?: number } = {},
) {
  const engine = new FakeEngine(engineOptions);
  const logger = createLogger("error");
  const hub = new SessionHub({
    engine,
    limits: { maxOutputTokensPerTurn: 16, maxQueuedChunks: options.maxQueuedChunks ?? 50, ...(options.maxOutputTokensCeiling ? { maxOutputTokensCeiling: options.maxOutputTokensCeiling } : {}) },
    maxSessions: 8,
    resumeGraceMs: options.resumeGraceMs ?? 5000,
    recordDir: "",
    logger,
    ...(options.spinWait ? { spinWait: options.spinWait } : {}),
  });
  running = await startServer({ hub, logger, metrics: new SidecarMetrics(false), apiKey: options.apiKey ?? "", host: "127.0.0.1", port: 0, httpPort: -1, isServing: () => true });
  const connect = (metadata?: grpc.Metadata) => {
    const c = new TestClient(running!.grpcAddress, metadata);
    clients.push(c);
    return c;
  };
  return { engine, hub, connect };
}

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await running?.close();
  running = undefined;
});

describe("Converse", () => {
  it("runs one micro-turn per chunk in seq order, output tied to its seq", async () => {
    const { engine, connect } = await setup();
    const c = connect();
    c.start();
    await c.waitCount("started", 1);
    expect(c.of("started")[0]!.capabilities!.engine).toBe("fake");
    for (let seq = 0; seq < 5; seq++) c.input(seq, seq === 2 ? "hi" : "");
    await c.waitCount("output", 5);
    const outputs = c.of("output");
    expect(outputs.map((o) => o.seq)).toEqual([0, 1, 2, 3, 4]);
    expect(outputs.map((o) => o.silent)).toEqual([true, true, false, true, true]);
    expect(outputs[2]!.text).toBe("HI");
    expect(outputs[2]!.startMs).toBe(600); // after its input ended
    expect(c.of("inputAck").map((a) => a.seq)).toEqual([0, 1, 2, 3, 4]);
    // Nothing was re-evaluated: the sequence is every input once plus the output.
    expect(engine.sessions[0]!.text).toBe("<0><1><2>hiHI<3><4>");
    // Event numbers are contiguous from 1.
    expect(c.events.map((e) => e.eventSeq)).toEqual(c.events.map((_, i) => i + 1));
  });

  it("spins awake around a live session's next chunk, not once the session ended", async () => {
    const spinWait = new SpinWait({ windowMs: 10, maxSessions: 8 });
    const { connect } = await setup({}, { spinWait });
    const live = connect();
    live.start();
    await live.waitCount("started", 1);
    // A 50 ms chunk: the next is due 50 ms later; the loop spins from 40 ms to its arrival, or to 60 ms.
    live.input(0, "", { durationMs: 50 });
    await live.waitCount("output", 1);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const spun = spinWait.spinMs;
    expect(spun).toBeGreaterThan(5);
    expect(spun).toBeLessThan(50);

    const ended = connect();
    ended.start();
    await ended.waitCount("started", 1);
    ended.input(0, "", { durationMs: 50 });
    ended.send({ $case: "end", value: { reason: "bye" } });
    await ended.waitCount("ended", 1);
    await new Promise((resolve) => setTimeout(resolve, 100));
    // No window opened for the ended session (a timer already armed for it may wake the loop for one empty turn).
    expect(spinWait.spinMs - spun).toBeLessThan(0.5);
    spinWait.close();
  });

  it("acknowledges a duplicate seq and ignores it; reports a gap and stays usable", async () => {
    const { engine, connect } = await setup();
    const c = connect();
    c.start();
    c.input(0, "a");
    c.input(0, "a");
    c.input(2, "c");
    await c.waitCount("error", 1);
    const gap = c.of("error")[0]!;
    expect(gap.code).toBe(ErrorCode.ERROR_CODE_SEQ_GAP);
    expect(gap.seq).toBe(1);
    expect(gap.retryable).toBe(true);
    expect(gap.fatal).toBe(false);
    c.input(1, "b");
    c.input(2, "c");
    await c.waitCount("output", 3);
    expect(c.of("inputAck").filter((a) => a.duplicate).map((a) => a.seq)).toEqual([0]);
    expect(engine.sessions[0]!.appends).toBe(3);
  });

  it("takes a session's output budget up to the sidecar's, never past it", async () => {
    const { connect } = await setup({ reply: () => "x".repeat(100) });
    const [within, over] = [connect(), connect()];
    within.start({ maxOutputTokensPerTurn: 4 });
    over.start({ maxOutputTokensPerTurn: 4_000_000 });
    within.input(0, "talk");
    over.input(0, "talk");
    await Promise.all([within.waitCount("output", 1), over.waitCount("output", 1)]);
    // One token per character in the test engine; the sidecar's limit here is 16.
    expect(within.of("output")[0]!.text).toHaveLength(4);
    expect(over.of("output")[0]!.text).toHaveLength(16);
    // Each hears the budget it got.
    expect(within.of("started")[0]!.maxOutputTokensPerTurn).toBe(4);
    expect(over.of("started")[0]!.maxOutputTokensPerTurn).toBe(16);
  });

  it("gives a session that asks for no budget the default, and one that asks for more up to the ceiling (--max-output-tokens-ceiling)", async () => {
    const { connect } = await setup({ reply: () => "x".repeat(100) }, { maxOutputTokensCeiling: 40 });
    const [plain, more, over] = [connect(), connect(), connect()];
    plain.start();
    more.start({ maxOutputTokensPerTurn: 30 });
    over.start({ maxOutputTokensPerTurn: 100 });
    for (const c of [plain, more, over]) c.input(0, "talk");
    await Promise.all([plain, more, over].map((c) => c.waitCount("output", 1)));
    expect([plain, more, over].map((c) => c.of("output")[0]!.text.length)).toEqual([16, 30, 40]);
    expect([plain, more, over].map((c) => c.of("started")[0]!.maxOutputTokensPerTurn)).toEqual([16, 30, 40]);
    // A resumed session hears its budget again.
    const token = more.of("started")[0]!.resumeToken;
    more.close();
    const back = connect();
    back.send({ $case: "resume", value: { protocolVersion: PROTOCOL_VERSION, resumeToken: token, lastEventSeq: 0 } });
    await back.waitCount("started", 1);
    expect(back.of("started")[0]).toMatchObject({ resumed: true, maxOutputTokensPerTurn: 30 });
  });

  it("refuses a start whose tools the model could not be shown, naming the tool; the next start opens", async () => {
    const { connect } = await setup();
    const bad = connect();
    bad.start({ tools: [{ name: "bad name!", description: "", parametersJson: "", timeoutMs: 0 }] });
    await bad.waitFor(() => bad.ended, "refused start");
    expect(bad.status?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(bad.of("error")[0]).toMatchObject({ code: ErrorCode.ERROR_CODE_INVALID_ARGUMENT, fatal: true });
    expect(bad.of("error")[0]!.message).toMatch(/tool name "bad name!"/);
    const good = connect();
    good.start({ tools: [{ name: "lookup", description: "", parametersJson: '{"type":"object"}', timeoutMs: 0 }] });
    await good.waitCount("started", 1);
  });

  it("refuses a chunk whose start_ms goes back in time; the same seq sent right is taken", async () => {
    const { connect } = await setup();
    const c = connect();
    c.start();
    c.input(0, "", { startMs: 1000 });
    c.input(1, "back", { startMs: 0 });
    c.input(1, "on", { startMs: 1200 });
    await c.waitCount("output", 2);
    expect(c.of("error")).toHaveLength(1);
    expect(c.of("error")[0]).toMatchObject({ code: ErrorCode.ERROR_CODE_INVALID_ARGUMENT, seq: 1, fatal: false });
    expect(c.of("error")[0]!.message).toMatch(/start_ms 0 is before the previous chunk's \(1000\)/);
    expect(c.of("output")[1]!.text).toBe("ON");
  });

  it("answers input before start with FAILED_PRECONDITION and then opens normally", async () => {
    const { connect } = await setup();
    const c = connect();
    c.input(0, "early");
    await c.waitCount("error", 1);
    expect(c.of("error")[0]!.code).toBe(ErrorCode.ERROR_CODE_FAILED_PRECONDITION);
    expect(c.of("error")[0]!.message).toMatch(/before the session started/);
    c.start();
    c.input(0, "now");
    await c.waitCount("output", 1);
    expect(c.of("output")[0]!.text).toBe("NOW");
  });

  it("rejects oversize and malformed chunks with typed errors; the session goes on", async () => {
    const { connect } = await setup();
    const c = connect();
    c.start();
    c.input(0, "x".repeat(5000));
    c.input(0, "", { pcm: { sampleRateHz: 16000, channels: 2, pcm16: new Uint8Array(8) } });
    c.input(0, "", { durationMs: 0 });
    c.input(0, "", { frames: [{ widthPx: 4, heightPx: 4, rgb: new Uint8Array(5), offsetMs: 0 }] });
    await c.waitCount("error", 4);
    expect(c.of("error").map((e) => e.code)).toEqual([
      ErrorCode.ERROR_CODE_TOO_LARGE,
      ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
      ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
      ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
    ]);
    expect(c.of("error")[1]!.message).toMatch(/mono/);
    expect(c.of("error")[3]!.message).toMatch(/expected 4x4x3/);
    c.input(0, "ok");
    await c.waitCount("output", 1);
    expect(c.of("output")[0]!.text).toBe("OK");
  });

  it("reports unsupported audio per policy: REJECT errors each time, NOTE replaces it with a note once reported", async () => {
    const { engine, connect } = await setup();
    const pcm = { sampleRateHz: 16000, channels: 1, pcm16: new Uint8Array(6400) };
    const reject = connect();
    reject.start({ unsupportedInput: UnsupportedInput.UNSUPPORTED_INPUT_REJECT });
    reject.input(0, "t", { pcm } as never);
    await reject.waitCount("output", 1);
    expect(reject.of("error")[0]!.code).toBe(ErrorCode.ERROR_CODE_UNSUPPORTED_MODALITY);
    expect(reject.of("output")[0]!.text).toBe("T"); // the chunk's text still counted

    const note = connect();
    note.start({ unsupportedInput: UnsupportedInput.UNSUPPORTED_INPUT_NOTE, inputModalities: [Modality.MODALITY_AUDIO] });
    note.input(0, "", { pcm } as never);
    note.input(1, "", { pcm } as never);
    await note.waitCount("output", 2);
    expect(note.of("error")).toHaveLength(1);
    expect(engine.sessions[1]!.text).toContain("<0>[audio: 200 ms]");
  });

  it("reports a full queue instead of hiding the lag", async () => {
    const { connect } = await setup({ delayMs: 100 }, { maxQueuedChunks: 2 });
    const c = connect();
    c.start();
    for (let seq = 0; seq < 4; seq++) c.input(seq, "");
    await c.waitCount("error", 1);
    const full = c.of("error")[0]!;
    expect(full.code).toBe(ErrorCode.ERROR_CODE_QUEUE_FULL);
    expect(full.retryable).toBe(true);
    expect(full.message).toMatch(/slower than real time/);
  });

  it("rewinds unheard output on barge-in and re-appends later input", async () => {
    const { engine, connect } = await setup({ reply: (chunk) => (chunk.seq === 0 ? "abcdefghij" : "") });
    const c = connect();
    c.start();
    c.input(0, "q");
    c.input(1, "later");
    await c.waitCount("output", 2);
    const first = c.of("output")[0]!;
    expect(first.startMs).toBe(200);
    expect(first.durationMs).toBe(600); // 10 chars at 60 ms
    // The user heard 30% of the answer.
    c.send({ $case: "interrupt", value: { playedUpToMs: first.startMs + 180 } });
    c.input(2, "");
    await c.waitCount("output", 3);
    expect(engine.sessions[0]!.text).toBe("<0>qabc<1>later<2>");
  });

  it("takes an answer that failed half-way back out of the model's memory: the input stays, the session goes on", async () => {
    let failed = false;
    const { engine, connect } = await setup({
      reply: (chunk) => (chunk.seq === 0 ? "xyz" : chunk.seq === 1 ? "abcdefgh" : (chunk.text ?? "").toUpperCase()),
      failAfter: (chunk) => (chunk.seq === 1 && !failed ? ((failed = true), 3) : undefined),
    });
    const c = connect();
    c.start();
    c.input(0, "p");
    c.input(1, "q");
    c.input(2, "hi");
    await c.waitCount("output", 2);
    const error = c.of("error")[0]!;
    expect(error.seq).toBe(1);
    expect(error.code).toBe(ErrorCode.ERROR_CODE_INTERNAL);
    expect(error.message).toContain("mid-answer");
    expect(error.fatal).toBe(false);
    // No output for the failed turn; the next one answers. The model heard "q" and kept none of "abc".
    expect(c.of("output").map((o) => o.seq)).toEqual([0, 2]);
    expect(engine.sessions[0]!.text).toBe("<0>pxyz<1>q<2>hiHI");
    // The failed turn is in the history like a silent one: a barge-in before it re-appends its input with the rest.
    c.send({ $case: "interrupt", value: { playedUpToMs: c.of("output")[0]!.startMs + 60 } });
    c.input(3, "");
    await c.waitCount("output", 3);
    expect(engine.sessions[0]!.text).toBe("<0>px<1>q<2>hi<3>");
  });

  it("takes playback acks as the floor of a barge-in, and reports the playback lag", async () => {
    const { engine, connect } = await setup({ reply: (chunk) => (chunk.seq === 0 ? "abcdefghij" : "") });
    const c = connect();
    c.start();
    c.input(0, "q");
    await c.waitCount("output", 1);
    const first = c.of("output")[0]!; // 600 ms of output from 200 ms
    c.send({ $case: "playback", value: { playedUpToMs: first.startMs + 300 } });
    // Acks that go backwards are ignored.
    c.send({ $case: "playback", value: { playedUpToMs: first.startMs + 60 } });
    // The client says it was interrupted before what it had already acknowledged as played.
    c.send({ $case: "interrupt", value: { playedUpToMs: first.startMs + 120 } });
    c.input(1, "");
    await c.waitCount("output", 2);
    // Cut at the ack (5 of 10 characters heard), not at the interrupt's 2.
    expect(engine.sessions[0]!.text).toBe("<0>qabcde<1>");
    expect(c.of("error")).toEqual([]);
    // The lag is what had been produced past the first ack: 300 ms.
    for (let seq = 2; seq < 30; seq++) c.input(seq, "");
    await c.waitCount("metrics", 1);
    expect(c.of("metrics")[0]!.playbackLagMs).toBe(300);
  });

  it("resumes a dropped stream with its token: missed events replayed, nothing doubled", async () => {
    const { engine, connect } = await setup();
    const c = connect();
    c.start();
    c.input(0, "a");
    await c.waitCount("output", 1);
    const { resumeToken } = c.of("started")[0]!;
    const lastSeen = c.events[c.events.length - 1]!.eventSeq;
    c.call.cancel();
    await c.waitFor(() => c.ended, "stream end");

    const d = connect();
    d.send({ $case: "resume", value: { protocolVersion: "1.0", resumeToken, lastEventSeq: lastSeen } });
    await d.waitCount("started", 1);
    expect(d.events[0]!.eventSeq).toBe(0);
    expect(d.of("started")[0]!).toMatchObject({ resumed: true, nextInputSeq: 1 });
    d.input(0, "a"); // resent by a client unsure it arrived
    d.input(1, "b");
    await d.waitCount("output", 1);
    expect(d.of("inputAck").map((a) => [a.seq, a.duplicate])).toEqual([
      [0, true],
      [1, false],
    ]);
    expect(engine.sessions).toHaveLength(1);
    expect(engine.sessions[0]!.text).toBe("<0>aA<1>bB");
    expect(d.events.slice(1).every((e) => e.eventSeq > lastSeen)).toBe(true);
  });

  it("refuses an unknown resume token and a different major protocol version", async () => {
    const { connect } = await setup();
    const c = connect();
    c.send({ $case: "resume", value: { protocolVersion: "1.0", resumeToken: "nope", lastEventSeq: 0 } });
    await c.waitFor(() => c.ended, "stream end");
    expect(c.of("error")[0]!.code).toBe(ErrorCode.ERROR_CODE_NOT_FOUND);
    expect(c.status?.code).toBe(grpc.status.NOT_FOUND);

    const v = connect();
    v.start({}, "2.0");
    await v.waitFor(() => v.ended, "stream end");
    expect(v.of("error")[0]!.code).toBe(ErrorCode.ERROR_CODE_VERSION_MISMATCH);
    expect(v.status?.code).toBe(grpc.status.FAILED_PRECONDITION);
  });

  it("requires the API key when one is set", async () => {
    const { connect } = await setup({}, { apiKey: "sekret" });
    const anon = connect();
    anon.start();
    await anon.waitFor(() => anon.ended, "stream end");
    expect(anon.status?.code).toBe(grpc.status.UNAUTHENTICATED);
    const md = new grpc.Metadata();
    md.set("authorization", "Bearer sekret");
    const ok = connect(md);
    ok.start();
    await ok.waitCount("started", 1);
  });

  it("ends cleanly on SessionEnd with the chunk count", async () => {
    const { engine, connect } = await setup();
    const c = connect();
    c.start();
    c.input(0, "a");
    c.send({ $case: "end", value: { reason: "bye" } });
    await c.waitFor(() => c.ended, "stream end");
    expect(c.status).toBeUndefined();
    expect(c.of("ended")[0]).toMatchObject({ reason: "bye", chunks: 1 });
    expect(engine.sessions[0]!.closed).toBe(true);
  });

  it("handles events written behind a SessionEnd still under way after it: the session is gone, nothing runs", async () => {
    const { engine, connect } = await setup();
    const c = connect();
    c.start();
    c.input(0, "a");
    c.send({ $case: "end", value: { reason: "bye" } });
    c.input(1, "late");
    c.send({ $case: "playback", value: { playedUpToMs: 100 } });
    await c.waitFor(() => c.ended, "stream end");
    expect(c.of("output").map((o) => o.text)).toEqual(["A"]);
    expect(c.of("inputAck").map((a) => a.seq)).toEqual([0]);
    expect(c.of("error")).toEqual([]);
    expect(c.of("ended")[0]).toMatchObject({ reason: "bye", chunks: 1 });
    expect(engine.sessions[0]!.appends).toBe(1);
  });

  it("on a client half-close finishes the queued micro-turns, ends the session and the stream", async () => {
    const { engine, connect } = await setup();
    const c = connect();
    c.start();
    c.input(0, "a");
    c.input(1, "b");
    c.call.end();
    await c.waitFor(() => c.ended, "stream end");
    expect(c.status).toBeUndefined();
    expect(c.of("output").map((o) => o.text)).toEqual(["A", "B"]);
    expect(c.of("ended")[0]).toMatchObject({ reason: "client closed its stream", chunks: 2 });
    expect(engine.sessions[0]!.closed).toBe(true);
  });

  it("paces output to real time: no new output while more than a chunk of it is still to be heard", async () => {
    const { connect } = await setup({ reply: () => "abcdefghij" }); // 600 ms of speech per answer
    const c = connect();
    c.start();
    for (let seq = 0; seq < 5; seq++) c.input(seq, "go");
    await c.waitCount("output", 5);
    const outputs = c.of("output");
    expect(outputs.map((o) => o.silent)).toEqual([false, true, false, true, true]);
    expect(outputs[2]!.startMs).toBe(800); // right after the first answer
  });
});
