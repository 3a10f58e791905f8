// A session that outlives its engine sequence: the real sidecar on the real
// embedded engine (tiny llama.cpp model) with small per-session capacity, driven
// over gRPC well past the point where the sequence is full. It rolls over into
// fresh engine sessions that carry the conversation and never answers TOO_LARGE.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ErrorCode } from "@microturn/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSidecar, type Sidecar } from "../src/app.js";
import { loadConfig } from "../src/config.js";
import { createEchoEngine } from "../src/engines/echo/index.js";
import { createEmbeddedEngine, type EmbeddedEngine } from "../src/engines/embedded/embedded-engine.js";
import { ensureTinyModel } from "../src/engines/embedded/tiny-model.js";
import { createLogger } from "../src/logger.js";
import { TestClient } from "./helpers/test-client.js";

const CAPACITY = 2048;
let engine: EmbeddedEngine;
let sidecar: Sidecar;
const clients: TestClient[] = [];

beforeAll(async () => {
  engine = await createEmbeddedEngine({ modelPath: ensureTinyModel({ dir: mkdtempSync(join(tmpdir(), "microturn-long-")) }), seed: 3 });
  const flags = ["--port", "0", "--metrics-port=-1", "--background", "none", "--drain-ms", "0", "--session-tokens", String(CAPACITY), "--max-output-tokens", "4"];
  sidecar = await startSidecar(loadConfig(flags, {}), { engine, logger: createLogger("error") });
});

afterAll(async () => {
  for (const c of clients.splice(0)) c.close();
  await sidecar?.shutdown();
  await engine?.dispose();
});

function connect(): TestClient {
  const c = new TestClient(sidecar.server.grpcAddress);
  clients.push(c);
  return c;
}

describe("a session longer than its engine sequence", () => {
  it("rolls over instead of failing, and says so in its metrics", { timeout: 60_000 }, async () => {
    const c = connect();
    c.start({ instructions: "Answer briefly." });
    await c.waitCount("started", 1);
    const chunks = 120;
    for (let seq = 0; seq < chunks; seq++) {
      c.input(seq, `this is sentence number ${seq} of a long talk`);
      await c.waitCount("output", seq + 1, 10_000);
    }
    expect(c.of("error")).toEqual([]);
    expect(c.of("output").map((o) => o.seq)).toEqual(Array.from({ length: chunks }, (_, i) => i));
    const metrics = c.of("metrics");
    expect(metrics.length).toBeGreaterThan(0);
    const last = metrics.at(-1)!;
    expect(last.contextRollovers).toBeGreaterThanOrEqual(2);
    expect(last.positionTokens).toBeLessThanOrEqual(CAPACITY);
    // The first engine session was closed at the first rollover; the live one carries the talk.
    const handle = [...sidecar.hub.sessions()][0]!;
    expect(handle.session.metrics().contextRollovers).toBe(last.contextRollovers);
    expect((await engine.health()).activeSessions).toBe(1);
  });

  it("still refuses a chunk too large for any sequence, and stays usable", { timeout: 30_000 }, async () => {
    const c = connect();
    c.start();
    await c.waitCount("started", 1);
    c.input(0, "word ".repeat(800)); // under the 4,096-character input limit, over the 2,048-token sequence
    await c.waitCount("error", 1);
    expect(c.of("error")[0]).toMatchObject({ code: ErrorCode.ERROR_CODE_TOO_LARGE, seq: 0 });
    c.input(1, "a short one");
    await c.waitCount("output", 1);
    expect(c.of("output").map((o) => o.seq)).toEqual([1]);
    const handle = [...sidecar.hub.sessions()].find((h) => h.session.id === c.of("started")[0]!.sessionId)!;
    expect(handle.session.metrics().contextRollovers).toBe(0);
  });
});

describe("what a rollover carries", () => {
  it("starts the next sequence with the system prompt and the newest talk, and appends the current chunk once", { timeout: 30_000 }, async () => {
    const echo = await createEchoEngine({});
    const small = await startSidecar(loadConfig(["--port", "0", "--metrics-port=-1", "--background", "none", "--drain-ms", "0", "--session-tokens", "400"], {}), {
      engine: echo,
      logger: createLogger("error"),
    });
    const c = new TestClient(small.server.grpcAddress);
    try {
      c.start({ instructions: "Be brief." });
      await c.waitCount("started", 1);
      const id = c.of("started")[0]!.sessionId;
      let seq = 0;
      while (c.of("metrics").every((m) => m.contextRollovers === 0)) {
        c.input(seq, `remark ${seq} about boats`);
        await c.waitCount("output", ++seq);
        expect(seq).toBeLessThan(200);
      }
      const last = seq - 1;
      const live = echo.session(`${id}-r1`) as unknown as { text: string };
      expect(live.text.startsWith("Be brief.")).toBe(true);
      expect(live.text).toContain("Conversation so far");
      expect(live.text).toContain(`user: remark ${last - 1} about boats`);
      // The chunk that triggered the rollover is appended as input, not carried in the prompt too.
      const firstChunk = live.text.indexOf("<t=");
      expect(firstChunk).toBeGreaterThan(0);
      expect(live.text.slice(0, firstChunk)).not.toContain(`remark ${last} about boats`);
      expect(live.text.slice(firstChunk)).toContain(`remark ${last} about boats`);
      expect(() => echo.session(id)).toThrow(/no open session/);
      expect(c.of("error")).toEqual([]);
    } finally {
      c.close();
      await small.shutdown();
    }
  });
});
