// The SDK against the real sidecar server, over gRPC and over WebSocket: the
// two halves of the product meet on a real socket.
import { Microturn, type InteractionSession } from "@microturn/sdk";
import { afterEach, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { createLogger } from "../src/logger.js";
import { SidecarMetrics } from "../src/metrics.js";
import { startServer, type RunningServer } from "../src/server.js";
import { SessionHub } from "../src/session/session-hub.js";
import { FakeEngine } from "./helpers/fake-engine.js";

let running: RunningServer | undefined;
const sessions: InteractionSession[] = [];

async function setup(apiKey = "") {
  const engine = new FakeEngine();
  const logger = createLogger("error");
  const hub = new SessionHub({ engine, limits: { maxOutputTokensPerTurn: 32, maxQueuedChunks: 50 }, maxSessions: 8, resumeGraceMs: 5000, recordDir: "", logger });
  running = await startServer({ hub, logger, metrics: new SidecarMetrics(false), apiKey, host: "127.0.0.1", port: 0, httpPort: 0, isServing: () => true });
  return { engine, hub, server: running };
}

afterEach(async () => {
  for (const s of sessions.splice(0)) await s.close().catch(() => undefined);
  await running?.close();
  running = undefined;
});

const until = async (check: () => boolean, ms = 5000) => {
  for (let waited = 0; !check() && waited < ms; waited += 10) await new Promise((r) => setTimeout(r, 10));
  return check();
};

async function talk(session: InteractionSession): Promise<string[]> {
  sessions.push(session);
  const outputs: string[] = [];
  session.on("output", (o) => {
    if (!o.silent) outputs.push(o.text);
  });
  await session.connect({ signal: AbortSignal.timeout(5000) });
  session.sendChunk({ text: "hello" });
  session.sendChunk({});
  session.sendChunk({ text: "again" });
  const deadline = Date.now() + 5000;
  while (outputs.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  return outputs;
}

describe("SDK ⇄ sidecar", () => {
  it("runs a session over gRPC", async () => {
    const { engine, server } = await setup("k1");
    const client = new Microturn({ url: `grpc://${server.grpcAddress}`, apiKey: "k1", clock: "manual" });
    const outputs = await talk(client.session({ instructions: "be brief" }));
    expect(outputs).toEqual(["HELLO", "AGAIN"]);
    expect(engine.sessions[0]!.text).toBe("<0>helloHELLO<1><2>againAGAIN");
  });

  it("runs the same session over WebSocket", async () => {
    const { engine, server } = await setup("k2");
    const client = new Microturn({ url: `ws://${server.httpAddress}`, apiKey: "k2", clock: "manual", WebSocket: WebSocket as never });
    const outputs = await talk(client.session({}));
    expect(outputs).toEqual(["HELLO", "AGAIN"]);
    expect(engine.sessions).toHaveLength(1);
  });

  it.each(["grpc", "ws"])("follows a drain's GoAway over %s: resumes, goes on talking until the sidecar ends the session, then closes cleanly", async (kind) => {
    const { hub, server } = await setup();
    const url = kind === "grpc" ? `grpc://${server.grpcAddress}` : `ws://${server.httpAddress}`;
    const client = new Microturn({ url, clock: "manual", WebSocket: WebSocket as never });
    const session = client.session({});
    sessions.push(session);
    const outputs: string[] = [];
    const seen: string[] = [];
    session.on("output", (o) => outputs.push(o.text));
    session.on("goAway", () => seen.push("goAway"));
    session.on("reconnected", () => seen.push("reconnected"));
    session.on("ended", (e) => seen.push(`ended: ${e.reason}`));
    const closed = new Promise<Error | undefined>((resolve) => session.on("close", ({ error }) => resolve(error)));
    await session.connect({ signal: AbortSignal.timeout(5000) });
    session.sendChunk({ text: "before" });
    await until(() => outputs.length === 1);
    hub.drain(2000);
    expect(await until(() => seen.includes("reconnected"))).toBe(true);
    session.sendChunk({ text: "after" });
    expect(await until(() => outputs.length === 2)).toBe(true);
    expect(outputs).toEqual(["BEFORE", "AFTER"]);
    expect(hub.size).toBe(1);
    await hub.closeAll("sidecar shut down");
    expect(await closed).toBeUndefined();
    expect(seen).toEqual(["goAway", "reconnected", "ended: sidecar shut down"]);
  });

  it("surfaces a server-side input error as a typed, non-fatal SDK error", async () => {
    const { server } = await setup();
    const client = new Microturn({ url: server.grpcAddress, clock: "manual" });
    const session = client.session({});
    sessions.push(session);
    const errors: Error[] = [];
    session.on("error", (e) => errors.push(e));
    await session.connect();
    // A delegate with no background model configured: BACKGROUND_UNAVAILABLE, session goes on.
    const task = session.delegate("look something up");
    await expect(task).rejects.toThrow(/background model/);
    const outputs: string[] = [];
    session.on("output", (o) => outputs.push(o.text));
    session.sendChunk({ text: "still here" });
    const deadline = Date.now() + 5000;
    while (outputs.length < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(outputs).toEqual(["STILL HERE"]);
  });
});
