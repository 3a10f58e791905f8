// Edges of a Converse stream found in review: a WebSocket close reason longer
// than the protocol allows (it once took the process down), and a stream that
// drops while its session is still opening (the session once stayed forever),
// a recording that cannot be written (it once threw an unhandled error), HTTP
// upgrades with bad URLs or wrong paths and resets (each once ended the
// process), /metrics failing, a start whose HTTP port is taken, a resume
// while the old stream still looked alive (its later close once ended the
// resumed session) and a refused resume (it once left the session attached to
// a dead stream forever), and concurrent starts past the session cap (all
// were let in).
import { mkdtempSync, writeFileSync } from "node:fs";
import { connect, createServer as createTcpServer, type AddressInfo } from "node:net";
import { networkInterfaces, tmpdir } from "node:os";
import { join } from "node:path";
import { ClientEvent, ErrorCode, PROTOCOL_VERSION, ServerEvent } from "@microturn/protocol";
import { afterEach, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import type { EngineSession, OpenSessionOptions } from "../src/engines/engine.js";
import { grpcStatusFor } from "../src/errors.js";
import { freePort } from "../src/handoff/testing/tcp-balancer.js";
import { createLogger } from "../src/logger.js";
import { SidecarMetrics } from "../src/metrics.js";
import { closeReason, startServer, WEBSOCKET_PATH, WEBSOCKET_PROTOCOL, type RunningServer } from "../src/server.js";
import { SessionHub } from "../src/session/session-hub.js";
import { FakeEngine } from "./helpers/fake-engine.js";
import { TestClient } from "./helpers/test-client.js";

/** Opens sessions only when the test lets it. */
class GatedEngine extends FakeEngine {
  opening = 0;
  private release: (() => void) | undefined;
  private readonly gate = new Promise<void>((resolve) => (this.release = resolve));

  override async openSession(options: OpenSessionOptions = {}): Promise<EngineSession> {
    this.opening++;
    await this.gate;
    return super.openSession(options);
  }

  open(): void {
    this.release!();
  }
}

let running: RunningServer | undefined;
const clients: TestClient[] = [];

interface SetupOptions {
  resumeGraceMs?: number;
  recordDir?: string;
  endWaitMs?: number;
  metrics?: SidecarMetrics;
  port?: number;
  httpPort?: number;
  now?: () => number;
}

const logger = createLogger("silent");

function serverOptions(engine: FakeEngine, options: SetupOptions = {}) {
  const { resumeGraceMs = 10_000, recordDir = "", endWaitMs, metrics = new SidecarMetrics(false), port = 0, httpPort = 0, now } = options;
  const hub = new SessionHub({
    engine,
    limits: { maxOutputTokensPerTurn: 16, maxQueuedChunks: 50 },
    maxSessions: 4,
    resumeGraceMs,
    recordDir,
    logger,
    ...(endWaitMs ? { endWaitMs } : {}),
    ...(now ? { now } : {}),
  });
  return { hub, logger, metrics, apiKey: "", host: "127.0.0.1", port, httpPort, isServing: () => true };
}

async function setup(engine: FakeEngine, options: SetupOptions = {}) {
  const opts = serverOptions(engine, options);
  running = await startServer(opts);
  return { hub: opts.hub, running };
}

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await running?.close();
  running = undefined;
});

const until = async (check: () => boolean, ms = 3000) => {
  for (let waited = 0; !check() && waited < ms; waited += 10) await new Promise((r) => setTimeout(r, 10));
  return check();
};

function openWebSocket(address: string): Promise<{ ws: WebSocket; events: ServerEvent[]; closed: Promise<{ code: number; reason: string }> }> {
  const ws = new WebSocket(`ws://${address}${WEBSOCKET_PATH}`, WEBSOCKET_PROTOCOL);
  const events: ServerEvent[] = [];
  ws.on("message", (data: Buffer) => events.push(ServerEvent.decode(data)));
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.once("close", (code, reason) => resolve({ code, reason: reason.toString() })));
  return new Promise((resolve, reject) => {
    ws.once("open", () => resolve({ ws, events, closed }));
    ws.once("error", reject);
  });
}

const start = (protocolVersion: string) => ClientEvent.encode(ClientEvent.fromPartial({ event: { $case: "start", value: { protocolVersion, config: { chunkDurationMs: 200 } } } })).finish();

describe("stream edges", () => {
  it("cuts a WebSocket close reason to the 123 bytes the protocol allows, at a character", () => {
    expect(closeReason("short")).toBe("short");
    for (const long of ["é".repeat(100), "a".repeat(300), "😀".repeat(50), `${"a".repeat(119)}😀😀`]) {
      const reason = closeReason(long);
      expect(Buffer.byteLength(reason)).toBeLessThanOrEqual(123);
      expect(reason.endsWith("…")).toBe(true);
      expect(long.startsWith(reason.slice(0, -1))).toBe(true);
      expect(reason).not.toMatch(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])/); // no half of a surrogate pair
    }
  });

  it("ends a WebSocket stream whose fatal error quotes long client text, and goes on serving", async () => {
    const { running } = await setup(new FakeEngine());
    const first = await openWebSocket(running.httpAddress!);
    first.ws.send(start(`${"é".repeat(80)}.0`));
    const { code, reason } = await first.closed;
    expect(code).toBe(4000 + grpcStatusFor(ErrorCode.ERROR_CODE_VERSION_MISMATCH));
    expect(reason).toMatch(/^client speaks protocol/);
    expect(first.events.map((e) => e.event?.$case)).toEqual(["error"]);
    // The process and the server are still there.
    const second = await openWebSocket(running.httpAddress!);
    second.ws.send(start(PROTOCOL_VERSION));
    expect(await until(() => second.events.length > 0)).toBe(true);
    expect(second.events[0]!.event?.$case).toBe("started");
    second.ws.close();
  });

  it("a stream that drops while its session opens leaves the session waiting for resume, then ended after the grace period", async () => {
    const engine = new GatedEngine();
    const { hub, running } = await setup(engine, { resumeGraceMs: 150 });
    const c = new TestClient(running.grpcAddress);
    clients.push(c);
    c.start();
    expect(await until(() => engine.opening === 1)).toBe(true);
    c.call.cancel();
    await new Promise((r) => setTimeout(r, 50));
    engine.open();
    expect(await until(() => hub.size === 1)).toBe(true);
    const handle = [...hub.sessions()][0]!;
    expect(handle.outbox.attached).toBe(false);
    expect(await until(() => hub.size === 0)).toBe(true);
    expect(engine.sessions[0]!.closed).toBe(true);
  });

  it("a grace period longer than a timer can wait keeps a dropped session (Node fired it after 1 ms, ending the session at once)", async () => {
    const { hub, running } = await setup(new FakeEngine(), { resumeGraceMs: 2 ** 31 });
    const c = new TestClient(running.grpcAddress);
    clients.push(c);
    c.start();
    await c.waitCount("started", 1);
    c.call.cancel();
    // Dropped (or, before the fix, already ended), then some time for a grace timer that fires at once.
    expect(await until(() => [...hub.sessions()].every((h) => !h.outbox.attached))).toBe(true);
    await new Promise((r) => setTimeout(r, 100));
    expect(hub.size).toBe(1);
    await hub.closeAll("test over");
  });

  it("a resume on a new stream while the old one still looks alive supersedes it: the old stream's close or half-close no longer touches the session", async () => {
    const engine = new FakeEngine();
    const { hub, running } = await setup(engine, { resumeGraceMs: 150 });
    const open = () => {
      const c = new TestClient(running.grpcAddress);
      clients.push(c);
      return c;
    };
    const old = open();
    old.start();
    await old.waitCount("started", 1);
    const token = old.of("started")[0]!.resumeToken;
    old.input(0, "one");
    await old.waitCount("output", 1);
    const lastEventSeq = old.events.at(-1)!.eventSeq;

    const fresh = open();
    fresh.send({ $case: "resume", value: { protocolVersion: PROTOCOL_VERSION, resumeToken: token, lastEventSeq } });
    await fresh.waitCount("started", 1);
    // The old stream is ended by the server, saying why.
    await old.waitFor(() => old.ended, "old stream end");
    expect(old.status?.code).toBe(grpcStatusFor(ErrorCode.ERROR_CODE_FAILED_PRECONDITION));
    expect(old.status?.details).toMatch(/resumed on another stream/);
    // Its half-close (which ends an owned session) and its close change nothing: after the grace period the session lives.
    old.call.end();
    old.close();
    await new Promise((r) => setTimeout(r, 400));
    expect(hub.size).toBe(1);
    fresh.input(1, "two");
    await fresh.waitCount("output", 1);
    expect(fresh.of("output")[0]!.text).toBe("TWO");
    expect(engine.sessions[0]!.closed).toBe(false);
  });

  it("a refused resume (events no longer kept) leaves the session as it was: its grace period still ends it", async () => {
    const engine = new FakeEngine();
    let clock = 0;
    const { hub, running } = await setup(engine, { resumeGraceMs: 300, now: () => clock });
    const c = new TestClient(running.grpcAddress);
    clients.push(c);
    c.start();
    for (let seq = 0; seq < 20; seq++) c.input(seq, `chunk ${seq}`);
    await c.waitCount("output", 20);
    // An hour later one more chunk: an attached session then lets go of its old events.
    clock += 3_600_000;
    c.input(20, "later");
    await c.waitCount("output", 21);
    const token = c.of("started")[0]!.resumeToken;
    c.close();
    const handle = [...hub.sessions()][0]!;
    expect(await until(() => !handle.outbox.attached)).toBe(true);

    const late = new TestClient(running.grpcAddress);
    clients.push(late);
    late.send({ $case: "resume", value: { protocolVersion: PROTOCOL_VERSION, resumeToken: token, lastEventSeq: 0 } });
    await late.waitFor(() => late.ended, "refused resume");
    expect(late.of("error")[0]).toMatchObject({ code: ErrorCode.ERROR_CODE_FAILED_PRECONDITION, fatal: true });
    expect(handle.outbox.attached).toBe(false);
    // The session was not left attached to the dead stream: the grace period ends it.
    expect(await until(() => hub.size === 0)).toBe(true);
    expect(engine.sessions[0]!.closed).toBe(true);
  });

  it("sessions still opening count against the session cap: concurrent starts do not pass it together", async () => {
    const engine = new GatedEngine();
    const { hub, running } = await setup(engine);
    const starters = Array.from({ length: 6 }, () => {
      const c = new TestClient(running.grpcAddress);
      clients.push(c);
      c.start();
      return c;
    });
    expect(await until(() => engine.opening === 4 && starters.filter((c) => c.ended).length === 2)).toBe(true);
    const refused = starters.filter((c) => c.ended);
    for (const c of refused) expect(c.of("error")[0]).toMatchObject({ code: ErrorCode.ERROR_CODE_RESOURCE_EXHAUSTED, fatal: true, retryable: true });
    engine.open();
    expect(await until(() => hub.size === 4 && starters.filter((c) => c.of("started").length === 1).length === 4)).toBe(true);
    expect(engine.opening).toBe(4);
  });

  const blocker = () => {
    const file = join(mkdtempSync(join(tmpdir(), "microturn-rec-")), "a-file");
    writeFileSync(file, "not a directory");
    return join(file, "recordings");
  };
  // The directory cannot be made (fails at once), or the file cannot be opened in it (fails later).
  it.each([
    ["under a file", blocker, /ENOTDIR|EEXIST/],
    ["in /proc", () => "/proc", /ENOENT|EACCES|EPERM/],
  ])("a recording that cannot be written (%s) stops; the session goes on and says so", async (_where, recordDir, cause) => {
    const { running } = await setup(new FakeEngine(), { recordDir: recordDir() });
    const c = new TestClient(running.grpcAddress);
    clients.push(c);
    c.start({ record: true });
    await c.waitCount("error", 1);
    expect(c.events[0]!.event?.$case).toBe("started");
    expect(c.of("error")[0]).toMatchObject({ code: ErrorCode.ERROR_CODE_INTERNAL, fatal: false });
    expect(c.of("error")[0]!.message).toMatch(/^recording failed, the session goes on unrecorded: /);
    expect(c.of("error")[0]!.message).toMatch(cause);
    c.input(0, "still here");
    await c.waitCount("output", 1);
    expect(c.of("output")[0]!.text).toBe("STILL HERE");
    c.send({ $case: "end", value: { reason: "done" } });
    await c.waitFor(() => c.ended, "stream end");
    expect(c.of("ended")[0]).toMatchObject({ chunks: 1, recordingPath: "" });
    expect(c.of("error")).toHaveLength(1);
  });

  /** Sends raw bytes to the HTTP port; resolves with what came back once the server closed. */
  const raw = (address: string, request: string, reset = false) =>
    new Promise<string>((resolve) => {
      const [host, port] = address.split(":");
      const socket = connect(Number(port), host!);
      let reply = "";
      socket.on("data", (d: Buffer) => (reply += d.toString()));
      socket.on("error", () => resolve(reply));
      socket.on("close", () => resolve(reply));
      socket.write(request);
      if (reset) setImmediate(() => socket.resetAndDestroy());
    });
  const upgrade = (path: string) => `GET ${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`;

  it("answers a WebSocket upgrade it cannot parse or route with a status and closes it; resets do not take the process down", async () => {
    const { running } = await setup(new FakeEngine());
    const http = running.httpAddress!;
    expect(await raw(http, upgrade("//["))).toMatch(/^HTTP\/1.1 400 Bad Request/);
    expect(await raw(http, upgrade("/elsewhere"))).toMatch(/^HTTP\/1.1 404 Not Found/);
    for (let i = 0; i < 20; i++) await raw(http, upgrade("/elsewhere"), true);
    const ws = await openWebSocket(http);
    ws.ws.send(start(PROTOCOL_VERSION));
    expect(await until(() => ws.events.length > 0)).toBe(true);
    ws.ws.close();
  });

  it("answers /metrics with 500 when rendering fails", async () => {
    const metrics = new SidecarMetrics(false);
    metrics.render = () => Promise.reject(new Error("registry broke"));
    const { running } = await setup(new FakeEngine(), { metrics });
    const response = await fetch(`http://${running.httpAddress}/metrics`);
    expect(response.status).toBe(500);
    expect((await fetch(`http://${running.httpAddress}/healthz`)).status).toBe(200);
  });

  it.skipIf(!Object.values(networkInterfaces()).some((list) => list?.some((i) => i.address === "::1")))(
    "serves both servers on an IPv6 address, written in brackets where a port follows",
    async () => {
      running = await startServer({ ...serverOptions(new FakeEngine()), host: "::1" });
      expect(running.grpcAddress).toMatch(/^\[::1\]:\d+$/);
      expect(running.httpAddress).toMatch(/^\[::1\]:\d+$/);
      const client = new TestClient(running.grpcAddress);
      clients.push(client);
      client.start();
      client.input(0, "over ipv6");
      await client.waitCount("inputAck", 1);
      expect(client.of("started")[0]?.sessionId).not.toBe("");
      const health = await fetch(`http://${running.httpAddress}/healthz`);
      expect(health.status).toBe(200);
    },
  );

  it("a sidecar whose HTTP port is taken does not start half: the gRPC port is released", async () => {
    const taken = createTcpServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    const grpcPort = await freePort();
    const httpPort = (taken.address() as AddressInfo).port;
    await expect(startServer(serverOptions(new FakeEngine(), { port: grpcPort, httpPort }))).rejects.toThrow(/--metrics-port \/ MICROTURN_METRICS_PORT: cannot serve HTTP .* \(the port is in use\)/);
    const again = createTcpServer();
    await new Promise<void>((resolve, reject) => {
      again.once("error", reject);
      again.listen(grpcPort, "127.0.0.1", resolve);
    });
    await new Promise<void>((resolve) => again.close(() => resolve()));
    await new Promise<void>((resolve) => taken.close(() => resolve()));
  });

  it("ends a session whose engine stopped answering within the end wait: queued turns are cut, the turn in flight aborted, nothing follows SessionEnded", async () => {
    class StuckEngine extends FakeEngine {
      aborted = 0;
      override async openSession(options: OpenSessionOptions = {}): Promise<EngineSession> {
        const session = await super.openSession(options);
        const engine = this;
        session.append = async function* (_chunk, appendOptions) {
          await new Promise<void>((resolve) => appendOptions.signal?.addEventListener("abort", () => resolve(), { once: true }));
          engine.aborted++;
          throw new Error("aborted");
        };
        return session;
      }
    }
    const engine = new StuckEngine();
    const { running } = await setup(engine, { endWaitMs: 100, httpPort: -1 });
    const c = new TestClient(running.grpcAddress);
    clients.push(c);
    c.start();
    for (let seq = 0; seq < 3; seq++) c.input(seq, "hello");
    await c.waitCount("inputAck", 3);
    const asked = Date.now();
    c.send({ $case: "end", value: { reason: "bye" } });
    await c.waitFor(() => c.ended, "stream end", 3000);
    expect(Date.now() - asked).toBeLessThan(2000);
    expect(c.events.at(-1)!.event?.$case).toBe("ended");
    expect(c.of("error")).toEqual([]);
    expect(c.of("output")).toEqual([]);
    expect(engine.aborted).toBe(1);
    expect(engine.sessions[0]!.closed).toBe(true);
  });
});
