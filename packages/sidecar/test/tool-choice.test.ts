// InputChunk.tool_choice end to end: the real sidecar on the real embedded
// engine (tiny llama.cpp model) over gRPC. The model must call the named tool;
// its arguments come out under the tool's JSON schema, the app answers, and the
// result reaches the model at the next micro-turn.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ErrorCode } from "@microturn/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSidecar, type Sidecar } from "../src/app.js";
import { loadConfig } from "../src/config.js";
import { createEmbeddedEngine, type EmbeddedEngine } from "../src/engines/embedded/embedded-engine.js";
import { ensureTinyModel } from "../src/engines/embedded/tiny-model.js";
import { createLogger } from "../src/logger.js";
import { FakeEngine } from "./helpers/fake-engine.js";
import { TestClient } from "./helpers/test-client.js";

const WEATHER = { name: "get_weather", description: "Weather for a city", parametersJson: '{"type":"object","properties":{"city":{"type":"string","maxLength":16}},"required":["city"]}', timeoutMs: 5000 };
let engine: EmbeddedEngine;
let sidecar: Sidecar;
const clients: TestClient[] = [];

beforeAll(async () => {
  engine = await createEmbeddedEngine({ modelPath: ensureTinyModel({ dir: mkdtempSync(join(tmpdir(), "microturn-choice-")) }), seed: 5 });
  sidecar = await startSidecar(loadConfig(["--port", "0", "--metrics-port=-1", "--background", "none", "--drain-ms", "0"], {}), { engine, logger: createLogger("error") });
});

afterAll(async () => {
  for (const c of clients.splice(0)) c.close();
  await sidecar?.shutdown();
  await engine?.dispose();
});

function connect(address = sidecar.server.grpcAddress): TestClient {
  const c = new TestClient(address);
  clients.push(c);
  return c;
}

describe("tool_choice", () => {
  it("makes the model call the tool; the app's result reaches the model at the next turn", { timeout: 30_000 }, async () => {
    const c = connect();
    c.start({ tools: [WEATHER] });
    await c.waitCount("started", 1);
    c.input(0, "hello");
    c.input(1, "what's the weather in Lisbon?", { toolChoice: "get_weather" });
    await c.waitCount("toolCall", 1);
    const call = c.of("toolCall")[0]!;
    expect(call).toMatchObject({ name: "get_weather", seq: 1 });
    const args = JSON.parse(call.argumentsJson) as { city: unknown };
    expect(typeof args.city).toBe("string");
    // The markup never reaches the client as speech.
    await c.waitCount("output", 2);
    expect(c.of("output")[1]!.text).not.toContain("tool_call");
    c.send({ $case: "toolResult", value: { callId: call.callId, outputJson: '{"sky":"sunny"}', isError: false } });
    await new Promise((r) => setTimeout(r, 100));
    const session = [...sidecar.hub.sessions()].find((h) => h.session.id === c.of("started")[0]!.sessionId)!.session;
    const grown: number[] = [];
    for (const seq of [2, 3]) {
      const before = session.positionTokens;
      c.input(seq, "");
      await c.waitCount("output", seq + 1);
      grown.push(session.positionTokens - before);
    }
    // Chunk 2 carried the tool result as context before its (empty) input; chunk 3 carried nothing.
    expect(grown[0]! - grown[1]!).toBeGreaterThan(10);
    expect(c.of("error")).toEqual([]);
  });

  it("refuses a tool_choice naming no tool of the session; the seq stays free for a corrected resend", { timeout: 30_000 }, async () => {
    const c = connect();
    c.start({ tools: [WEATHER] });
    await c.waitCount("started", 1);
    c.input(0, "hi", { toolChoice: "get_wether" });
    await c.waitCount("error", 1);
    expect(c.of("error")[0]).toMatchObject({ code: ErrorCode.ERROR_CODE_INVALID_ARGUMENT, seq: 0 });
    expect(c.of("error")[0]!.message).toContain("get_weather");
    c.input(0, "hi", { toolChoice: "get_weather" });
    await c.waitCount("toolCall", 1);
    expect(c.of("toolCall")[0]!.seq).toBe(0);
  });

  it("refuses tool_choice on an engine that cannot constrain decoding, and the session goes on", { timeout: 30_000 }, async () => {
    const other = await startSidecar(loadConfig(["--port", "0", "--metrics-port=-1", "--background", "none", "--drain-ms", "0"], {}), {
      engine: new FakeEngine({}),
      logger: createLogger("error"),
    });
    try {
      const c = connect(other.server.grpcAddress);
      c.start({ tools: [WEATHER] });
      await c.waitCount("started", 1);
      c.input(0, "hi", { toolChoice: "get_weather" });
      await c.waitCount("error", 1);
      expect(c.of("error")[0]).toMatchObject({ code: ErrorCode.ERROR_CODE_FAILED_PRECONDITION, seq: 0 });
      c.input(0, "hi");
      await c.waitCount("output", 1);
      expect(c.of("output")[0]!.seq).toBe(0);
    } finally {
      await other.shutdown();
    }
  });
});
