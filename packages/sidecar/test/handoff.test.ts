// Sessions moving between sidecars: two real sidecars (echo engine, the same
// OpenAI-compatible background server) share a peer key, and the SDK reaches
// them through a TCP balancer the test points at one or the other. A drain's
// GoAway, or a dropped connection, sends the client's resume to the other
// sidecar, which takes the session over; the conversation goes on with
// nothing lost or doubled.
import { createServer, connect, type AddressInfo, type Server, type Socket } from "node:net";
import * as grpc from "@grpc/grpc-js";
import { HandoffClient, type SessionSnapshot } from "@microturn/protocol";
import { Microturn, type InteractionSession } from "@microturn/sdk";
import { afterEach, describe, expect, it } from "vitest";
import { startSidecar, type Sidecar } from "../src/app.js";
import { startOpenAiTestServer, type OpenAiTestServer } from "../src/background/testing/openai-server.js";
import { loadConfig } from "../src/config.js";
import { PEER_PROOF_HEADER } from "../src/handoff/peer-client.js";
import { PeerKey } from "../src/handoff/peer-key.js";
import { createLogger } from "../src/logger.js";
import { say } from "./helpers/sdk-hello.js";

const KEY = "k".repeat(16) + "peer-key-of-this-test";

interface Balancer {
  port: number;
  /** New connections go to this port from now on. */
  point(port: number): void;
  /** Cuts every connection open now (a network blip). */
  cut(): void;
  close(): Promise<void>;
}

/** A TCP balancer: each new connection goes to the sidecar it points at now. */
async function startBalancer(target: number): Promise<Balancer> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((down) => {
    const up = connect(target, "127.0.0.1");
    for (const s of [down, up]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => undefined);
    }
    down.on("close", () => up.destroy());
    up.on("close", () => down.destroy());
    down.pipe(up).pipe(down);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    point(port) {
      target = port;
    },
    cut() {
      for (const s of sockets) s.destroy();
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

const until = async (check: () => boolean, ms = 8000) => {
  for (let waited = 0; !check() && waited < ms; waited += 10) await new Promise((r) => setTimeout(r, 10));
  return check();
};

const sidecars: Sidecar[] = [];
const sessions: InteractionSession[] = [];
const closers: Array<() => Promise<void>> = [];

afterEach(async () => {
  for (const s of sessions.splice(0)) await s.close().catch(() => undefined);
  await Promise.all(sidecars.splice(0).map((s) => s.shutdown().catch(() => undefined)));
  for (const close of closers.splice(0)) await close();
});

async function startPeer(port: number, background: OpenAiTestServer, key = KEY): Promise<Sidecar> {
  const config = loadConfig(
    [
      "--engine=echo",
      `--port=${port}`,
      "--metrics-port=-1",
      `--peer-key=${key}`,
      `--advertise-url=grpc://127.0.0.1:${port}`,
      "--background=openai",
      `--background-url=${background.url}`,
      "--drain-ms=8000",
      "--resume-grace-ms=10000",
    ],
    {},
  );
  const sidecar = await startSidecar(config, { logger: createLogger("error") });
  sidecars.push(sidecar);
  return sidecar;
}

async function pair(script: Parameters<typeof startOpenAiTestServer>[0] = { kind: "stream", content: ["ok"] }) {
  const background = await startOpenAiTestServer(script);
  closers.push(() => background.close());
  const [pa, pb] = [await freePort(), await freePort()];
  const a = await startPeer(pa, background);
  const b = await startPeer(pb, background);
  const balancer = await startBalancer(pa);
  closers.push(() => balancer.close());
  const client = new Microturn({ url: `grpc://127.0.0.1:${balancer.port}`, clock: "manual", reconnect: { initialDelayMs: 20, maxDelayMs: 200, maxAttempts: 20 } });
  return { background, a, b, pa, pb, balancer, client };
}

async function moves(sidecar: Sidecar, direction: "in" | "out"): Promise<number> {
  const metric = await sidecar.metrics.registry.getSingleMetric("microturn_session_moves_total")?.get();
  return metric?.values.find((v) => v.labels.direction === direction && v.labels.result === "ok")?.value ?? 0;
}

describe("sessions moving between sidecars", () => {
  it("follows a rolling restart: the draining sidecar's session goes on on its peer, its conversation and unfinished task with it", async () => {
    // The first task request (on A) never answers; the one B makes after the move does.
    const { background, a, b, pb, balancer, client } = await pair((_request, index) => (index === 0 ? { kind: "hang" } : { kind: "stream", content: ["found ", "it"] }));
    const session = client.session({ instructions: "be brief" });
    sessions.push(session);
    const seen: string[] = [];
    const outputs: number[] = [];
    session.on("goAway", () => seen.push("goAway"));
    session.on("reconnected", () => seen.push("reconnected"));
    session.on("output", (o) => outputs.push(o.seq));
    await session.connect({ signal: AbortSignal.timeout(5000) });
    const id = session.id;
    expect(await say(session, "one")).toBe("one");
    const task = session.delegate("find the thing");
    expect(await until(() => background.requests.length === 1)).toBe(true);

    // A rolling restart: the balancer sends new connections to B, and A drains.
    balancer.point(pb);
    const drained = a.shutdown();
    expect(await until(() => seen.includes("reconnected"))).toBe(true);
    expect(seen).toEqual(["goAway", "reconnected"]);
    expect(session.id).toBe(id);
    expect(await say(session, "two")).toBe("two");

    // The task ran again on B, from the conversation A had: the context package holds what was said there.
    expect(await task).toBe("found it");
    const moved = JSON.stringify(background.requests[1]!.body.messages);
    expect(moved).toContain("one");
    expect(moved).toContain("find the thing");

    // A let go of the session at once: its drain ends long before --drain-ms.
    const started = Date.now();
    await drained;
    expect(Date.now() - started).toBeLessThan(4000);
    expect(a.hub.size).toBe(0);
    expect(b.hub.size).toBe(1);
    // Each chunk answered once: nothing lost or doubled across the move.
    expect(outputs).toEqual([0, 1]);
    expect(await moves(a, "out")).toBe(1);
    expect(await moves(b, "in")).toBe(1);
  });
});
