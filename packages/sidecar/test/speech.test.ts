// A session that speaks, end to end over gRPC: the engine's audio reaches the
// client in each OutputChunk at the rate asked for, sets the output timeline,
// and a barge-in keeps the share that was heard. A session asking for audio
// from an engine that only writes text is refused at start.
import { ErrorCode, FinishReason, OutputMode } from "@microturn/protocol";
import { afterEach, describe, expect, it } from "vitest";
import { createEchoEngine, type EchoEngine } from "../src/engines/echo/index.js";
import { createLogger } from "../src/logger.js";
import { SidecarMetrics } from "../src/metrics.js";
import { startServer, type RunningServer } from "../src/server.js";
import { SessionHub } from "../src/session/session-hub.js";
import { TestClient } from "./helpers/test-client.js";

let running: RunningServer | undefined;
const clients: TestClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await running?.close();
  running = undefined;
});

async function setup(engine: EchoEngine) {
  const logger = createLogger("silent");
  const hub = new SessionHub({ engine, limits: { maxOutputTokensPerTurn: 16, maxQueuedChunks: 50 }, maxSessions: 4, resumeGraceMs: 5000, recordDir: "", logger });
  running = await startServer({ hub, logger, metrics: new SidecarMetrics(false), apiKey: "", host: "127.0.0.1", port: 0, httpPort: 0, isServing: () => true });
  const client = new TestClient(running.grpcAddress);
  clients.push(client);
  return { hub, client };
}

describe("a session that speaks", () => {
  it("gets the engine's audio with each output, at the rate it asked for, and its timeline follows the audio", async () => {
    const { client } = await setup(await createEchoEngine({ media: true }));
    client.start({ outputMode: OutputMode.OUTPUT_MODE_AUDIO, outputSampleRateHz: 24000 });
    client.input(0, "hello world");
    await client.waitCount("output", 1);
    const first = client.of("output")[0]!;
    expect(first.text).toBe("hello world");
    // The echo engine speaks 60 ms a character: "hello" and " world" are 660 ms.
    expect(first.audio).toMatchObject({ sampleRateHz: 24000, channels: 1 });
    // The resampler to 24 kHz holds back its filter's few ms for the next spoken turn.
    const firstSamples = first.audio!.pcm16.length / 2;
    expect(firstSamples).toBeGreaterThan(0.66 * 24000 - 100);
    expect(firstSamples).toBeLessThanOrEqual(0.66 * 24000);
    expect(first.durationMs).toBe(Math.round((firstSamples / 24000) * 1000));
    expect(first.silent).toBe(false);
    // The next output starts where this one's audio ends (pacing holds the model back while it still plays).
    for (let seq = 1; seq <= 3; seq++) client.input(seq, "");
    client.input(4, "again");
    await client.waitCount("output", 5);
    const again = client.of("output")[4]!;
    expect(again.text).toBe("again");
    expect(again.startMs).toBeGreaterThanOrEqual(first.startMs + first.durationMs);
    // What was held back comes out with it: the two carry all but the last few ms of the 960 ms spoken.
    const total = firstSamples + again.audio!.pcm16.length / 2;
    expect(total).toBeGreaterThan(0.96 * 24000 - 100);
    expect(total).toBeLessThanOrEqual(0.96 * 24000);
    // A silent turn carries no audio.
    expect(client.of("output")[1]).toMatchObject({ silent: true, durationMs: 0, finishReason: FinishReason.FINISH_REASON_SILENT });
    expect(client.of("output")[1]!.audio).toBeUndefined();
  });

  it("a barge-in keeps the share of the spoken output that was heard", async () => {
    const engine = await createEchoEngine({ media: true });
    const { client } = await setup(engine);
    client.start({ outputMode: OutputMode.OUTPUT_MODE_AUDIO });
    client.input(0, "hello world");
    await client.waitCount("output", 1);
    const spoken = client.of("output")[0]!;
    const sessionId = client.of("started")[0]!.sessionId;
    const text = () => (engine.session(sessionId) as unknown as { text: string }).text;
    expect(text()).toBe("<t=0.0s>hello worldhello world");
    // Half of the 660 ms was heard: of the output, "hello" stays and " world" goes.
    client.send({ $case: "interrupt", value: { playedUpToMs: spoken.startMs + 330 } });
    client.input(1, "");
    await client.waitCount("output", 2);
    expect(text()).toBe("<t=0.0s>hello worldhello<t=0.2s>");
  });

  it("speaks nothing to a text session on the same engine", async () => {
    const { client } = await setup(await createEchoEngine({ media: true }));
    client.start({ outputMode: OutputMode.OUTPUT_MODE_TEXT });
    client.input(0, "hello world");
    await client.waitCount("output", 1);
    expect(client.of("output")[0]!.audio).toBeUndefined();
    expect(client.of("output")[0]!.durationMs).toBe(11 * 60);
  });

  it("refuses AUDIO output from an engine that only writes text, before opening anything; the server goes on", async () => {
    const engine = await createEchoEngine();
    const { hub, client } = await setup(engine);
    client.start({ outputMode: OutputMode.OUTPUT_MODE_AUDIO });
    await client.waitFor(() => client.ended, "refused start");
    expect(client.of("error")[0]).toMatchObject({ code: ErrorCode.ERROR_CODE_UNSUPPORTED_MODALITY, fatal: true });
    expect(client.of("error")[0]!.message).toMatch(/echo engine produces text only/);
    expect(hub.size).toBe(0);
    expect((await engine.health()).activeSessions).toBe(0);
    const next = new TestClient(running!.grpcAddress);
    clients.push(next);
    next.start();
    next.input(0, "still serving");
    await next.waitCount("output", 1);
    expect(next.of("output")[0]!.text).toBe("still serving");
  });
});
