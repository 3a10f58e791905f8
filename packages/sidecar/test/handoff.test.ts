// Sessions moving between sidecars: two real sidecars (echo engine, the same
// OpenAI-compatible background server) share a peer key, and the SDK reaches
// them through a TCP balancer the test points at one or the other. A drain's
// GoAway, or a dropped connection, sends the client's resume to the other
// sidecar, which takes the session over; the conversation goes on with
// nothing lost or doubled.
import * as grpc from "@grpc/grpc-js";
import { ErrorCode, HandoffClient, SettleResult, type SessionSnapshot, type SettleOutcome } from "@microturn/protocol";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Microturn, type InteractionSession } from "@microturn/sdk";
import { WebSocket } from "ws";
import { afterEach, describe, expect, it } from "vitest";
import { startSidecar, type Sidecar, type SidecarOverrides } from "../src/app.js";
import { startOpenAiTestServer, type OpenAiTestServer } from "../src/background/testing/openai-server.js";
import { loadConfig } from "../src/config.js";
import { EchoEngine } from "../src/engines/echo/index.js";
import { PEER_PROOF_HEADER, PeerClient } from "../src/handoff/peer-client.js";
import { PeerKey } from "../src/handoff/peer-key.js";
import { freePort, startTcpBalancer } from "../src/handoff/testing/tcp-balancer.js";
import { createLogger } from "../src/logger.js";
import { readSessionRecording, replayEvents } from "../src/replay.js";
import { say } from "./helpers/sdk-hello.js";
import { TestClient } from "./helpers/test-client.js";

const KEY = "k".repeat(16) + "peer-key-of-this-test";

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

async function startPeer(port: number, background: OpenAiTestServer, httpPort = -1, flags: string[] = [], overrides: SidecarOverrides = {}): Promise<Sidecar> {
  const config = loadConfig(
    [
      "--engine=echo",
      `--port=${port}`,
      `--metrics-port=${httpPort}`,
      `--peer-key=${KEY}`,
      `--advertise-url=${flags.some((f) => f.startsWith("--tls-cert")) ? "grpcs" : "grpc"}://127.0.0.1:${port}`,
      "--move-lease-ms=2000",
      ...flags,
      "--background=openai",
      `--background-url=${background.url}`,
      "--drain-ms=3000",
      "--resume-grace-ms=10000",
    ],
    {},
  );
  const sidecar = await startSidecar(config, { logger: createLogger("error"), ...overrides });
  sidecars.push(sidecar);
  return sidecar;
}

const RECONNECT = { initialDelayMs: 20, maxDelayMs: 200, maxAttempts: 20 };

interface PairOptions {
  script?: Parameters<typeof startOpenAiTestServer>[0];
  /** The balancer fronts the HTTP ports (WebSocket clients) instead of the gRPC ones. */
  websocket?: boolean;
  /** More flags both sidecars get (TLS, a record folder). */
  flags?: string[];
}

/** Sidecars A and B sharing a peer key and a background server, a balancer pointing at A, and an SDK client for it (gRPC unless asked). */
async function pair({ script = { kind: "stream", content: ["ok"] }, websocket = false, flags = [] }: PairOptions = {}) {
  const background = await startOpenAiTestServer(script);
  closers.push(() => background.close());
  const [pa, pb] = [await freePort(), await freePort()];
  const [ha, hb] = websocket ? [await freePort(), await freePort()] : [-1, -1];
  const a = await startPeer(pa, background, ha, flags);
  const b = await startPeer(pb, background, hb, flags);
  const balancer = await startTcpBalancer(websocket ? ha : pa);
  closers.push(() => balancer.close());
  const client = new Microturn({ url: `grpc://127.0.0.1:${balancer.port}`, clock: "manual", reconnect: RECONNECT });
  return { background, a, b, pa, pb, ha, hb, balancer, client };
}

/** Opens a session on `client` (closed after the test) that tracks the seqs answered, and says "one" on it. */
async function talking(client: Microturn) {
  const session = client.session({});
  sessions.push(session);
  const outputs: number[] = [];
  session.on("output", (o) => outputs.push(o.seq));
  await session.connect({ signal: AbortSignal.timeout(5000) });
  expect(await say(session, "one")).toBe("one");
  return { session, outputs };
}

async function moves(sidecar: Sidecar, direction: "in" | "out", result: "ok" | "failed" | "handed_again" = "ok"): Promise<number> {
  const metric = await sidecar.metrics.registry.getSingleMetric("microturn_session_moves_total")?.get();
  return metric?.values.find((v) => v.labels.direction === direction && v.labels.result === result)?.value ?? 0;
}

describe("sessions moving between sidecars", () => {
  it("follows a rolling restart: the draining sidecar's session goes on on its peer, its conversation and unfinished task with it", async () => {
    // The first task request (on A) never answers; the one B makes after the move does.
    const { background, a, b, pb, balancer, client } = await pair({ script: (_request, index) => (index === 0 ? { kind: "hang" } : { kind: "stream", content: ["found ", "it"] }) });
    const session = client.session({ instructions: "be brief" });
    sessions.push(session);
    const seen: string[] = [];
    const outputs: number[] = [];
    session.on("goAway", () => seen.push("goAway"));
    session.on("reconnecting", ({ attempt }) => seen.push(`reconnecting ${attempt}`));
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
    // One attempt: after a GoAway the SDK opens a new connection, which the balancer gives to B.
    expect(seen).toEqual(["goAway", "reconnecting 1", "reconnected"]);
    expect(session.id).toBe(id);
    expect(await say(session, "two")).toBe("two");

    // The task ran again on B, from the conversation A had: the context package holds what was said there.
    expect(await task).toBe("found it");
    const moved = JSON.stringify(background.requests[1]!.body.messages);
    expect(moved).toContain("one");
    expect(moved).toContain("find the thing");

    // A let go of the session at once: its drain ends before --drain-ms (3 s) is up.
    const started = Date.now();
    await drained;
    expect(Date.now() - started).toBeLessThan(2500);
    expect(a.hub.size).toBe(0);
    expect(b.hub.size).toBe(1);
    // Each chunk answered once: nothing lost or doubled across the move.
    expect(outputs).toEqual([0, 1]);
    expect(await moves(a, "out")).toBe(1);
    expect(await moves(b, "in")).toBe(1);
    expect(await b.metrics.registry.getSingleMetricAsString("microturn_session_move_ms")).toMatch(/microturn_session_move_ms_count\{direction="in"\} 1/);
  });

  it("moves a session whose connection dropped when the client comes back through another sidecar", async () => {
    const { a, b, pb, balancer, client } = await pair();
    const { session, outputs } = await talking(client);
    balancer.point(pb);
    balancer.cut();
    expect(await say(session, "two")).toBe("two");
    expect(await say(session, "three")).toBe("three");
    expect(outputs).toEqual([0, 1, 2]);
    expect(a.hub.size).toBe(0);
    expect(b.hub.size).toBe(1);
  });

  it("carries a client tool call across the move: its result, answered after it, reaches the model on the new sidecar", async () => {
    const { background, pb, balancer, a, client } = await pair();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const calls: string[] = [];
    const session = client.session({
      tools: [
        {
          name: "lookup",
          description: "looks a thing up",
          handler: async (args: unknown) => {
            calls.push(JSON.stringify(args));
            await gate;
            return { answer: 42 };
          },
        },
      ],
    });
    sessions.push(session);
    const errors: Error[] = [];
    session.on("error", (e) => errors.push(e));
    await session.connect({ signal: AbortSignal.timeout(5000) });
    // The echo engine says what it hears: the model "calls" the tool.
    session.sendChunk({ text: '<tool_call>{"name": "lookup", "arguments": {"q": "x"}}</tool_call>' });
    expect(await until(() => calls.length === 1)).toBe(true);
    balancer.point(pb);
    const drained = a.shutdown();
    expect(await until(() => a.hub.size === 0)).toBe(true);
    release();
    await drained;
    // A boundary after the result came gives it to the model (the SDK resends unacknowledged chunks before
    // control events, so "next" may come first); a task delegated after it sees it in the conversation.
    expect(await say(session, "next")).toBe("next");
    expect(await say(session, "again")).toBe("again");
    await session.delegate("summarise");
    const context = JSON.stringify(background.requests.at(-1)!.body.messages);
    expect(context).toContain("[tool lookup result]");
    expect(context).toContain("42");
    expect(errors).toEqual([]);
  });

  it("refuses what it cannot take with a typed error and stays up: a token it cannot read, one sealed with another key, a peer that is gone", async () => {
    const { b, pb, a } = await pair();
    const c = new TestClient(`127.0.0.1:${pb}`);
    closers.push(async () => c.close());
    const resume = async (token: string) => {
      c.events.length = 0;
      c.open();
      c.send({ $case: "resume", value: { protocolVersion: "1.0", resumeToken: token, lastEventSeq: 0 } });
      await c.waitCount("error", 1);
      return c.of("error")[0]!;
    };
    expect(await resume("no-such-token")).toMatchObject({ code: 7, fatal: true });
    expect(await resume(new PeerKey("another deployment's key, 32+ chars").mintToken(`grpc://127.0.0.1:${pb}`))).toMatchObject({ code: 7, fatal: true });
    // Sealed with the right key, but nothing listens where it points: worth another try later.
    const gone = await resume(new PeerKey(KEY).mintToken(`grpc://127.0.0.1:${await freePort()}`));
    expect(gone).toMatchObject({ code: 10, retryable: true, fatal: true });
    expect(gone.message).toMatch(/did not answer/);
    // A's own token for a session A does not hold (ended): not found, asked of A.
    expect(await resume(new PeerKey(KEY).mintToken(a.config.advertiseUrl))).toMatchObject({ code: 7, fatal: true });
    // B still serves.
    const fresh = new TestClient(`127.0.0.1:${pb}`);
    closers.push(async () => fresh.close());
    fresh.start();
    fresh.input(0, "still here");
    await fresh.waitFor(() => fresh.of("output").some((o) => o.text === "still here"), "the output");
    expect(b.hub.size).toBe(1);
  });

  it("loses nothing when the sidecar a session moves to stalls before it holds it: the client's next resume, through a third sidecar, takes it once the lease ran out", async () => {
    const background = await startOpenAiTestServer({ kind: "stream", content: ["ok"] });
    closers.push(() => background.close());
    const [pa, pb, pc] = [await freePort(), await freePort(), await freePort()];
    const lease = ["--move-lease-ms=400"];
    // B hangs opening the engine session of a session that moves to it (a sidecar about to fail).
    let wake!: () => void;
    const woken = new Promise<void>((resolve) => (wake = resolve));
    const echo = new EchoEngine();
    const open = echo.openSession.bind(echo);
    const [opened, closed] = [[] as string[], [] as string[]];
    echo.openSession = async (options) => {
      const id = options?.sessionId ?? "";
      if (id.includes("-m")) await woken;
      const engineSession = await open(options);
      opened.push(id);
      const close = engineSession.close.bind(engineSession);
      engineSession.close = async () => (closed.push(id), close());
      return engineSession;
    };
    const a = await startPeer(pa, background, -1, lease);
    const b = await startPeer(pb, background, -1, lease, { engine: echo });
    const c = await startPeer(pc, background, -1, lease);
    const balancer = await startTcpBalancer(pa);
    closers.push(() => balancer.close());
    const { session, outputs } = await talking(new Microturn({ url: `grpc://127.0.0.1:${balancer.port}`, clock: "manual", reconnect: RECONNECT }));

    // The client's connection drops and its resume reaches B, which takes the session from A and stalls.
    balancer.point(pb);
    balancer.cut();
    expect(await until(() => a.hub.size === 0)).toBe(true);
    // A keeps the state until a taker confirms it holds the session.
    expect(a.hub.unsettled).toBe(1);
    expect(await moves(a, "out")).toBe(0);
    // The client gives up on B and comes back through C: refused while B's lease runs, then C takes it.
    balancer.point(pc);
    balancer.cut();
    expect(await say(session, "two")).toBe("two");
    expect(outputs).toEqual([0, 1]);
    expect([a.hub.unsettled, b.hub.size, c.hub.size]).toEqual([0, 0, 1]);
    expect(await moves(a, "out")).toBe(1);
    expect(await moves(a, "out", "handed_again")).toBe(1);
    expect(await moves(c, "in")).toBe(1);

    // B gave up the take when its lease ran out; when its engine opens at last, it closes what it built.
    expect(await moves(b, "in", "failed")).toBe(1);
    wake();
    expect(await until(() => opened.length > 0 && closed.length === opened.length)).toBe(true);
    expect(closed.sort()).toEqual(opened.sort());
    expect(b.hub.size).toBe(0);
    expect(await moves(b, "in")).toBe(0);
    expect(await say(session, "three")).toBe("three");
    expect(outputs).toEqual([0, 1, 2]);
  });

  it("serves Take and Settle only to callers holding the peer key", async () => {
    const { pa } = await pair();
    const client = new HandoffClient(`127.0.0.1:${pa}`, grpc.credentials.createInsecure());
    closers.push(async () => client.close());
    const take = (token: string, proof?: string) =>
      new Promise<{ code?: number; snapshot?: SessionSnapshot }>((resolve) => {
        const metadata = new grpc.Metadata();
        if (proof !== undefined) metadata.set(PEER_PROOF_HEADER, proof);
        client.take({ resumeToken: token, lastEventSeq: 0, takerUrl: "test", settles: true }, metadata, (err, res) => resolve(err ? { code: err.code } : { snapshot: res.snapshot! }));
      });
    expect(await take("t")).toEqual({ code: grpc.status.UNAUTHENTICATED });
    expect(await take("t", new PeerKey("another deployment's key, 32+ chars").takeProof("t"))).toEqual({ code: grpc.status.UNAUTHENTICATED });
    expect(await take("t", new PeerKey(KEY).takeProof("t"))).toEqual({ code: grpc.status.NOT_FOUND });
    const settle = (proofs: string[]) =>
      new Promise<SettleOutcome[]>((resolve, reject) =>
        client.settle({ settlements: proofs.map((proof) => ({ resumeToken: "t", handoverId: "h", proof })), takerUrl: "test" }, (err, res) => (err ? reject(err) : resolve(res.outcomes))),
      );
    // Each settlement is checked on its own proof.
    expect(await settle(["", new PeerKey("another deployment's key, 32+ chars").takeProof("t"), new PeerKey(KEY).takeProof("t")])).toEqual([
      { result: SettleResult.SETTLE_RESULT_UNAUTHENTICATED, reason: expect.stringContaining("peer key") },
      { result: SettleResult.SETTLE_RESULT_UNAUTHENTICATED, reason: expect.stringContaining("peer key") },
      { result: SettleResult.SETTLE_RESULT_UNKNOWN, reason: expect.stringContaining("no such hand-over") },
    ]);
  });

  it("moves a browser's session too: a WebSocket client that comes back through another sidecar goes on there", async () => {
    const { a, b, hb, balancer } = await pair({ websocket: true });
    const { session, outputs } = await talking(new Microturn({ url: `ws://127.0.0.1:${balancer.port}`, clock: "manual", WebSocket: WebSocket as never, reconnect: RECONNECT }));
    balancer.point(hb);
    const drained = a.shutdown();
    expect(await say(session, "two")).toBe("two");
    await drained;
    expect(outputs).toEqual([0, 1]);
    expect([a.hub.size, b.hub.size]).toEqual([0, 1]);
  });

  it.each([
    ["TLS", false],
    ["mutual TLS", true],
  ])("moves sessions between sidecars that speak %s, each checking the other's certificate", async (_name, mutual) => {
    const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/tls/${name}`, import.meta.url));
    const tls = [`--tls-cert=${fixture("server.pem")}`, `--tls-key=${fixture("server.key")}`, `--peer-ca=${fixture("ca.pem")}`, ...(mutual ? [`--tls-client-ca=${fixture("ca.pem")}`] : [])];
    const { a, b, pb, balancer } = await pair({ flags: tls });
    const pem = (name: string) => readFileSync(fixture(name));
    const client = new Microturn({
      url: `grpcs://127.0.0.1:${balancer.port}`,
      tls: { ca: pem("ca.pem"), ...(mutual ? { cert: pem("client.pem"), key: pem("client.key") } : {}) },
      clock: "manual",
      reconnect: RECONNECT,
    });
    const { session } = await talking(client);
    balancer.point(pb);
    const drained = a.shutdown();
    expect(await say(session, "two")).toBe("two");
    await drained;
    expect([a.hub.size, b.hub.size]).toEqual([0, 1]);
    expect(await moves(b, "in")).toBe(1);
    // The taker checks the owner's certificate: without the CA it does not get through.
    const token = new PeerKey(KEY).mintToken(`grpcs://127.0.0.1:${pb}`);
    const trusting = new PeerClient({ key: new PeerKey(KEY), selfUrl: "grpcs://127.0.0.1:1", tls: { ca: pem("ca.pem"), ...(mutual ? { cert: pem("server.pem"), key: pem("server.key") } : {}) } });
    const untrusting = new PeerClient({ key: new PeerKey(KEY), selfUrl: "grpcs://127.0.0.1:1", timeoutMs: 1000 });
    closers.push(async () => (trusting.close(), untrusting.close()));
    await expect(trusting.take(`grpcs://127.0.0.1:${pb}`, token, 0)).rejects.toMatchObject({ code: ErrorCode.ERROR_CODE_NOT_FOUND });
    await expect(untrusting.take(`grpcs://127.0.0.1:${pb}`, token, 0)).rejects.toMatchObject({ code: ErrorCode.ERROR_CODE_TIMEOUT, retryable: true });
  });

  it("records a session that moved in parts, one per sidecar, which replay reads as one", async () => {
    const dir = mkdtempSync(join(tmpdir(), "microturn-moved-recording-"));
    closers.push(async () => rmSync(dir, { recursive: true, force: true }));
    const { a, b, pb, balancer } = await pair({ flags: [`--record-dir=${dir}`] });
    const client = new Microturn({ url: `grpc://127.0.0.1:${balancer.port}`, clock: "manual", reconnect: RECONNECT });
    const session = client.session({ record: true });
    sessions.push(session);
    const ended = new Promise<string>((resolve) => session.on("ended", (e) => resolve(e.recordingPath)));
    await session.connect({ signal: AbortSignal.timeout(5000) });
    expect(await say(session, "one")).toBe("one");
    balancer.point(pb);
    const drained = a.shutdown();
    expect(await say(session, "two")).toBe("two");
    await drained;
    await session.close();
    expect(await ended).toBe(join(dir, `${session.id}.part2.jsonl`));
    const recording = await readSessionRecording(join(dir, `${session.id}.jsonl`));
    expect(recording.files).toHaveLength(2);
    const inputs = recording.events.flatMap((e) => (e.event?.$case === "input" ? [`${e.event.value.seq}:${e.event.value.text}`] : []));
    expect(recording.events[0]!.event?.$case).toBe("start");
    expect(inputs).toEqual(["0:one", "1:two"]);
    // Replayed on one sidecar, the two parts are one conversation.
    const replay = await replayEvents(recording.events, b.config);
    expect(replay.problems).toEqual([]);
    expect(replay.outputs.filter((o) => !o.silent).map((o) => o.text)).toEqual(["one", "two"]);
  });
});
