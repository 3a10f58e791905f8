// A client that vanishes without closing its socket (a frozen network path):
// the server's keepalive pings go unanswered, the connection is dropped, and
// the session waits for resume with nothing lost.
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { ClientEvent, PROTOCOL_VERSION, ServerEvent } from "@microturn/protocol";
import { afterEach, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { createLogger } from "../src/logger.js";
import { SidecarMetrics } from "../src/metrics.js";
import { startServer, WEBSOCKET_PATH, WEBSOCKET_PROTOCOL, type RunningServer } from "../src/server.js";
import { SessionHub } from "../src/session/session-hub.js";
import { FakeEngine } from "./helpers/fake-engine.js";
import { TestClient } from "./helpers/test-client.js";

let running: RunningServer | undefined;
let proxy: Server | undefined;
const clients: TestClient[] = [];
const sockets: Socket[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const s of sockets.splice(0)) s.destroy();
  await new Promise<void>((resolve) => (proxy ? proxy.close(() => resolve()) : resolve()));
  proxy = undefined;
  await running?.close();
  running = undefined;
});

/** Forwards TCP to `target` until frozen; frozen, it keeps both sockets open and passes nothing. */
async function freezableProxy(target: string): Promise<{ address: string; freeze: () => void }> {
  const [host, port] = [target.slice(0, target.lastIndexOf(":")), Number(target.slice(target.lastIndexOf(":") + 1))];
  let frozen = false;
  proxy = createServer((downstream) => {
    const upstream = createConnection({ host, port });
    sockets.push(downstream, upstream);
    downstream.on("data", (d) => void (frozen || upstream.write(d)));
    upstream.on("data", (d) => void (frozen || downstream.write(d)));
    downstream.on("error", () => undefined);
    upstream.on("error", () => undefined);
  });
  await new Promise<void>((resolve) => proxy!.listen(0, "127.0.0.1", resolve));
  const { port: proxyPort } = proxy.address() as { port: number };
  return { address: `127.0.0.1:${proxyPort}`, freeze: () => (frozen = true) };
}

async function setup(httpPort = -1) {
  const logger = createLogger("error");
  const hub = new SessionHub({ engine: new FakeEngine(), limits: { maxOutputTokensPerTurn: 16, maxQueuedChunks: 50 }, maxSessions: 4, resumeGraceMs: 10_000, recordDir: "", logger });
  running = await startServer({
    hub,
    logger,
    metrics: new SidecarMetrics(false),
    apiKey: "",
    host: "127.0.0.1",
    port: 0,
    httpPort,
    isServing: () => true,
    keepalive: { timeMs: 200, timeoutMs: 300 },
  });
  return { hub, running };
}

describe("keepalive", () => {
  it("drops a connection whose client stopped answering; the session waits for resume and loses nothing", async () => {
    const { hub, running } = await setup();
    const path = await freezableProxy(running.grpcAddress);
    const c = new TestClient(path.address);
    clients.push(c);
    c.start();
    c.input(0, "a");
    await c.waitCount("output", 1);
    const { resumeToken } = c.of("started")[0]!;
    const lastSeen = c.events[c.events.length - 1]!.eventSeq;
    path.freeze();
    const handle = [...hub.sessions()][0]!;
    await c.waitFor(() => !handle.outbox.attached, "the server to drop the silent connection", 5000);
    expect(hub.size).toBe(1);

    const d = new TestClient(running.grpcAddress);
    clients.push(d);
    d.send({ $case: "resume", value: { protocolVersion: "1.0", resumeToken, lastEventSeq: lastSeen } });
    await d.waitCount("started", 1);
    expect(d.of("started")[0]!).toMatchObject({ resumed: true, nextInputSeq: 1 });
    d.input(1, "b");
    await d.waitCount("output", 1);
    expect(d.of("output")[0]!.text).toBe("B");
  });

  it("cuts a WebSocket client that stops answering pings; its session waits for resume", async () => {
    const { hub, running } = await setup(0);
    const ws = new WebSocket(`ws://${running.httpAddress}${WEBSOCKET_PATH}`, WEBSOCKET_PROTOCOL, { autoPong: false });
    const events: ServerEvent[] = [];
    ws.on("message", (data: Buffer) => events.push(ServerEvent.decode(data)));
    await new Promise((resolve) => ws.once("open", resolve));
    const closed = new Promise((resolve) => ws.once("close", resolve));
    ws.send(ClientEvent.encode(ClientEvent.fromPartial({ event: { $case: "start", value: { protocolVersion: PROTOCOL_VERSION, config: { chunkDurationMs: 200 } } } })).finish());
    await closed;
    expect(events[0]?.event?.$case).toBe("started");
    const handle = [...hub.sessions()][0]!;
    for (let waited = 0; handle.outbox.attached && waited < 2000; waited += 20) await new Promise((r) => setTimeout(r, 20));
    expect(handle.outbox.attached).toBe(false);
    expect(hub.size).toBe(1);
  });
});
