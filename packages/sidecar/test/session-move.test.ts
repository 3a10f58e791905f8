// A session moving between two hubs in one process, through the real
// snapshot encoding: what was queued runs once on the taker, event numbers go
// on where the client left off, and the taker's model starts from the
// conversation so far.
import { ErrorCode, SessionSnapshot, type ServerEvent } from "@microturn/protocol";
import { describe, expect, it } from "vitest";
import { EngineError } from "../src/engines/errors.js";
import { SessionFault } from "../src/errors.js";
import { PeerKey } from "../src/handoff/peer-key.js";
import { createLogger } from "../src/logger.js";
import { SessionHub, type HubHandoff } from "../src/session/session-hub.js";
import { FakeEngine } from "./helpers/fake-engine.js";
import { TestClient } from "./helpers/test-client.js";

const KEY = new PeerKey("a peer key of at least thirty-two characters");
const logger = createLogger("error");

function sink() {
  const events: ServerEvent[] = [];
  return { events, send: (event: ServerEvent) => void events.push(event) };
}

/**
 * A peer's calls to `hub`, through the wire format as a real Take goes. A
 * settlement waits for `gates.get(selfUrl)` first, when there is one (a slow
 * network, an overloaded owner).
 */
function wire(hubsByUrl: Map<string, SessionHub>, selfUrl: string, taken: string[], gates: Map<string, Promise<void>>): Pick<HubHandoff, "take" | "settle"> {
  const peer = (url: string) => hubsByUrl.get(url) ?? Promise.reject(new SessionFault(ErrorCode.ERROR_CODE_TIMEOUT, `${url} is gone`, { retryable: true, fatal: true }));
  return {
    take: async (owner, token, lastEventSeq) => {
      taken.push(owner);
      const result = await (await peer(owner)).handOff(token, lastEventSeq, selfUrl);
      return "snapshot" in result ? { ...result, snapshot: SessionSnapshot.decode(SessionSnapshot.encode(result.snapshot).finish()) } : result;
    },
    settle: async (owner, token, handoverId) => {
      await gates.get(selfUrl);
      return hubsByUrl.get(owner)?.settle(token, handoverId, selfUrl) ?? { result: "unreachable", why: `${owner} is gone` };
    },
  };
}

/**
 * Hubs A, B and C (grpc://a:1, …) that take sessions from each other; A lets
 * its queued turns run `releaseWaitMs` before it cuts them.
 */
function hubs(delayMs: number, releaseWaitMs = 20, handoff: Partial<HubHandoff> = {}, only: Partial<Record<"a" | "b" | "c", Partial<HubHandoff>>> = {}) {
  const engines = { a: new FakeEngine({ delayMs }), b: new FakeEngine({ delayMs }), c: new FakeEngine({ delayMs }) };
  const options = { limits: { maxOutputTokensPerTurn: 32, maxQueuedChunks: 50 }, maxSessions: 8, resumeGraceMs: 5000, recordDir: "", logger };
  const taken: string[] = [];
  const byUrl = new Map<string, SessionHub>();
  const gates = new Map<string, Promise<void>>();
  const hub = (name: "a" | "b" | "c") => {
    const selfUrl = `grpc://${name}:1`;
    const made = new SessionHub({ ...options, engine: engines[name], handoff: { key: KEY, selfUrl, releaseWaitMs, ...wire(byUrl, selfUrl, taken, gates), ...handoff, ...only[name] } });
    byUrl.set(selfUrl, made);
    return made;
  };
  /** Holds `name`'s settlements until the returned function is called. */
  const holdSettlements = (name: "a" | "b" | "c") => {
    let release!: () => void;
    gates.set(`grpc://${name}:1`, new Promise<void>((r) => (release = r)));
    return () => {
      gates.delete(`grpc://${name}:1`);
      release();
    };
  };
  /** Makes `name`'s engine hang opening sessions until the returned function is called. */
  const hangEngine = (name: "a" | "b" | "c") => {
    let release!: () => void;
    const blocked = new Promise<void>((r) => (release = r));
    const open = engines[name].openSession.bind(engines[name]);
    engines[name].openSession = async (options) => (await blocked, open(options));
    return release;
  };
  return { a: hub("a"), b: hub("b"), c: hub("c"), engines, taken, byUrl, holdSettlements, hangEngine };
}

/** A session on `hub` that said "one" and was answered; `lastSeen` is the client's last event_seq. */
async function talkingOn(hub: SessionHub) {
  const first = sink();
  const handle = await hub.create(TestClient.config(), first);
  handle.session.acceptInput(chunk(0, "one"));
  await handle.session.whenIdle();
  return { handle, first, lastSeen: first.events.at(-1)!.eventSeq };
}

const chunk = (seq: number, text: string) => ({ seq, startMs: seq * 200, durationMs: 200, text, toolChoice: "", userSpeaking: false, frames: [], patches: [] });
const cases = (events: ServerEvent[]) => events.map((e) => e.event?.$case);
const outputs = (events: ServerEvent[]) => events.flatMap((e) => (e.event?.$case === "output" ? [`${e.event.value.seq}:${e.event.value.text}`] : []));

describe("a session moving between hubs", () => {
  it("runs the chunks that were acknowledged but not answered on the taker, once each, and numbers on from where the client was", async () => {
    const { a, b, engines, taken } = hubs(100);
    const first = sink();
    const handle = await a.create(TestClient.config({ instructions: "be brief" }), first);
    handle.session.acceptInput(chunk(0, "one"));
    await handle.session.whenIdle();
    // Two more chunks: acknowledged at once, the first in flight (100 ms) when the client moves.
    handle.session.acceptInput(chunk(1, "two"));
    handle.session.acceptInput(chunk(2, "three"));
    expect(cases(first.events)).toEqual(["started", "inputAck", "output", "inputAck", "inputAck"]);
    const lastSeen = first.events.at(-1)!.eventSeq;

    const second = sink();
    const taking = b.resume(handle.resumeToken, lastSeen, second);
    // While A hands the session over it holds none, but a draining A must not stop yet: the state is not sent.
    for (let i = 0; i < 100 && a.size > 0; i++) await new Promise((r) => setTimeout(r, 1));
    expect(a.size).toBe(0);
    expect(a.unsettled).toBe(1);
    const moved = await taking;
    expect(a.unsettled).toBe(0);
    expect(taken).toEqual(["grpc://a:1"]);
    expect(moved.session.id).toBe(handle.session.id);
    expect(moved.resumeToken).not.toBe(handle.resumeToken);
    expect(KEY.ownerOf(moved.resumeToken)).toBe("grpc://b:1");
    expect(a.size).toBe(0);
    await moved.session.whenIdle();

    // A said nothing more after the move; B answered both queued chunks, numbering on from the client's last event.
    expect(first.events.at(-1)!.eventSeq).toBe(lastSeen);
    expect(second.events[0]).toMatchObject({ eventSeq: 0, event: { $case: "started", value: { resumed: true, nextInputSeq: 3 } } });
    expect(outputs(second.events)).toEqual(["1:TWO", "2:THREE"]);
    expect(second.events.slice(1).map((e) => e.eventSeq)).toEqual(second.events.slice(1).map((_, i) => lastSeen + 1 + i));
    // The model on B began from the conversation on A, and appended each moved chunk once.
    const bSession = engines.b.sessions.at(-1)!;
    expect(bSession.systemPrompt).toContain("be brief");
    expect(bSession.systemPrompt).toMatch(/Conversation so far:\n\[0\.0s\] user: one\n\[0\.2s\] assistant: ONE/);
    expect(bSession.appended.map((c) => c.seq)).toEqual([1, 2]);
    // A's engine sessions are closed; the cut turn is not answered there.
    expect(engines.a.sessions.every((s) => s.closed)).toBe(true);

    // The session goes on on B: the next chunk, a duplicate of a moved one, a gap.
    moved.session.acceptInput(chunk(3, "four"));
    moved.session.acceptInput(chunk(2, "three"));
    await moved.session.whenIdle();
    expect(outputs(second.events)).toEqual(["1:TWO", "2:THREE", "3:FOUR"]);
    expect(second.events.some((e) => e.event?.$case === "inputAck" && e.event.value.seq === 2 && e.event.value.duplicate)).toBe(true);
  });

  it("moves the results the cut turn had taken with it: the taker's model gets them with that chunk, once (they were lost)", async () => {
    const { a, b, engines } = hubs(100);
    const { handle, first } = await talkingOn(a);
    // A tool's result waits for the next boundary (reached into: the fake engine writes no tool calls).
    (handle.session as unknown as { deliveries: { addToolResult(name: string, text: string, at: number): void } }).deliveries.addToolResult("get_weather", '{"sky":"sunny"}', 200);
    handle.session.acceptInput(chunk(1, "two"));
    await new Promise((r) => setTimeout(r, 20)); // seq 1's turn took the result and is in the engine
    expect(engines.a.sessions.at(-1)!.appended.map((c) => c.seq)).toEqual([0]);
    const moved = await b.resume(handle.resumeToken, first.events.at(-1)!.eventSeq, sink());
    await moved.session.whenIdle();
    const bSession = engines.b.sessions.at(-1)!;
    expect(bSession.systemPrompt).not.toContain("sunny");
    expect(bSession.appended.map((c) => [c.seq, (c.context ?? []).map((i) => i.text)])).toEqual([[1, ['[tool get_weather result] {"sky":"sunny"}']]]);
  });

  it("lets the owner finish a short queue first: its answers reach the client through the taker's replay", async () => {
    const { a, b, engines } = hubs(30, 2000);
    const first = sink();
    const handle = await a.create(TestClient.config(), first);
    handle.session.acceptInput(chunk(0, "one"));
    handle.session.acceptInput(chunk(1, "two"));
    const lastSeen = first.events.at(-1)!.eventSeq;
    const second = sink();
    const moved = await b.resume(handle.resumeToken, lastSeen, second);
    expect(outputs(second.events)).toEqual(["0:ONE", "1:TWO"]);
    expect(moved.session.expectedSeq).toBe(2);
    expect(engines.b.sessions.flatMap((s) => s.appended)).toEqual([]);
    expect(engines.b.sessions.at(-1)!.systemPrompt).toContain("assistant: TWO");
  });

  it("sends a resume that reaches the draining owner on, and keeps the session for a peer to take", async () => {
    const { a, b } = hubs(0);
    const handle = await a.create(TestClient.config(), sink());
    handle.session.acceptInput(chunk(0, "one"));
    await handle.session.whenIdle();
    a.drain(1000);
    await expect(a.resume(handle.resumeToken, 0, sink())).rejects.toMatchObject({ code: ErrorCode.ERROR_CODE_RESOURCE_EXHAUSTED, retryable: true, fatal: true });
    expect(a.size).toBe(1);
    const moved = await b.resume(handle.resumeToken, 0, sink());
    expect(moved.session.expectedSeq).toBe(1);
    expect(a.size).toBe(0);
    // The token is spent on A, which says where the session went.
    expect(await a.handOff(handle.resumeToken, 0, "grpc://c:1")).toEqual({ movedTo: "grpc://b:1" });
    // A client that never heard B's started (its stream dropped during the take) comes back with the old token: B knows it.
    const again = sink();
    expect(await b.resume(handle.resumeToken, 0, again)).toBe(moved);
    expect(again.events[0]).toMatchObject({ eventSeq: 0, event: { $case: "started", value: { resumeToken: moved.resumeToken } } });
    // Once the session ends there, neither token finds it.
    await b.end(moved, "done");
    await expect(b.resume(handle.resumeToken, 0, sink())).rejects.toMatchObject({ code: ErrorCode.ERROR_CODE_NOT_FOUND });
    await expect(b.resume(moved.resumeToken, 0, sink())).rejects.toMatchObject({ code: ErrorCode.ERROR_CODE_NOT_FOUND });
  });

  it("keeps a session it took but could not build (its engine failed) for the client's next try", async () => {
    const { a, b, engines, taken } = hubs(0);
    const { handle, lastSeen } = await talkingOn(a);
    // B's engine refuses the next session it is asked to open, once.
    const open = engines.b.openSession.bind(engines.b);
    let refuse = true;
    engines.b.openSession = async (options) => {
      if (!refuse) return open(options);
      refuse = false;
      throw new EngineError("unavailable", "engine restarting");
    };
    await expect(b.resume(handle.resumeToken, lastSeen, sink())).rejects.toMatchObject({ code: ErrorCode.ERROR_CODE_ENGINE, retryable: true, fatal: true });
    expect([a.size, b.size]).toEqual([0, 0]);
    // B confirmed it: A no longer keeps the state, and says where the session is; a draining B would wait for it.
    expect([a.unsettled, b.unsettled]).toEqual([0, 1]);
    expect(await a.handOff(handle.resumeToken, lastSeen, "grpc://c:1")).toEqual({ movedTo: "grpc://b:1" });
    // The client tries again with the same token: B builds the session from what it kept, without asking A.
    const second = sink();
    const moved = await b.resume(handle.resumeToken, lastSeen, second);
    expect(taken).toHaveLength(1);
    expect(moved.session.expectedSeq).toBe(1);
    expect(second.events[0]).toMatchObject({ event: { $case: "started", value: { resumed: true, nextInputSeq: 1 } } });
    moved.session.acceptInput(chunk(1, "two"));
    await moved.session.whenIdle();
    expect(outputs(second.events)).toEqual(["1:TWO"]);
  });

  it("loses nothing when the taker fails before it holds the session: once its lease ran out another sidecar takes it, and the late taker's confirmation is refused", async () => {
    const { a, b, c, engines, holdSettlements } = hubs(0, 20, { settleLeaseMs: 100 });
    const { handle, lastSeen } = await talkingOn(a);
    // B takes the session and builds it, but its settlement does not get through (a sidecar about to die).
    const unblock = holdSettlements("b");
    const bSink = sink();
    const stuck = b.resume(handle.resumeToken, lastSeen, bSink).catch((err: unknown) => err);
    for (let i = 0; i < 200 && a.size > 0; i++) await new Promise((r) => setTimeout(r, 1));
    await new Promise((r) => setTimeout(r, 40));
    // A still keeps the state, and a draining A would wait for it.
    expect([a.size, a.unsettled]).toEqual([0, 1]);
    // The client gives up on B and comes back through C: refused while B's lease runs, with a retry.
    await expect(c.resume(handle.resumeToken, lastSeen, sink())).rejects.toMatchObject({ code: ErrorCode.ERROR_CODE_RESOURCE_EXHAUSTED, retryable: true, message: expect.stringContaining("grpc://b:1") });
    await new Promise((r) => setTimeout(r, 120));
    const third = sink();
    const moved = await c.resume(handle.resumeToken, lastSeen, third);
    expect(a.unsettled).toBe(0);
    expect(moved.session.expectedSeq).toBe(1);
    // B's settlement gets through late: refused, B drops what it built and tells its client to resume again.
    unblock();
    expect(await stuck).toMatchObject({ code: ErrorCode.ERROR_CODE_RESOURCE_EXHAUSTED, retryable: true, message: expect.stringContaining("another sidecar") });
    expect(b.size).toBe(0);
    expect(engines.b.sessions.length).toBeGreaterThan(0);
    expect(engines.b.sessions.every((s) => s.closed)).toBe(true);
    // B never spoke to its client.
    expect(bSink.events).toEqual([]);
    // The session goes on on C only.
    moved.session.acceptInput(chunk(1, "two"));
    await moved.session.whenIdle();
    expect(outputs(third.events)).toEqual(["1:TWO"]);
    expect(await a.handOff(handle.resumeToken, lastSeen, "grpc://b:1")).toEqual({ movedTo: "grpc://c:1" });
  });

  it("takes a session back when the sidecar it went to let its lease pass and the client comes back", async () => {
    const { a, b, engines, holdSettlements } = hubs(0, 20, { settleLeaseMs: 50 });
    const { handle, lastSeen } = await talkingOn(a);
    const unblock = holdSettlements("b");
    const stuck = b.resume(handle.resumeToken, lastSeen, sink()).catch((err: unknown) => err);
    for (let i = 0; i < 200 && a.size > 0; i++) await new Promise((r) => setTimeout(r, 1));
    // Back on A while B's lease runs: refused with a retry; after it, A builds the session again from what it kept.
    await expect(a.resume(handle.resumeToken, lastSeen, sink())).rejects.toMatchObject({ code: ErrorCode.ERROR_CODE_RESOURCE_EXHAUSTED, retryable: true });
    await new Promise((r) => setTimeout(r, 80));
    const back = sink();
    const again = await a.resume(handle.resumeToken, lastSeen, back);
    expect([a.size, a.unsettled]).toEqual([1, 1]);
    expect(back.events[0]).toMatchObject({ event: { $case: "started", value: { resumed: true, nextInputSeq: 1 } } });
    again.session.acceptInput(chunk(1, "two"));
    await again.session.whenIdle();
    expect(outputs(back.events)).toEqual(["1:TWO"]);
    // Ended on A before B's settlement gets through: A still remembers that the session came back, and refuses it.
    await a.end(again, "done");
    unblock();
    expect(await stuck).toMatchObject({ code: ErrorCode.ERROR_CODE_RESOURCE_EXHAUSTED, retryable: true, message: expect.stringContaining("back on this sidecar") });
    expect(b.size).toBe(0);
    expect(engines.b.sessions.every((s) => s.closed)).toBe(true);
    // Nobody holds the session now: a Take of the first token is answered "not found", not sent round in circles.
    await expect(a.handOff(handle.resumeToken, lastSeen, "grpc://c:1")).rejects.toMatchObject({ code: ErrorCode.ERROR_CODE_NOT_FOUND });
  });

  it("gives up a take whose engine does not open the session within the lease: the owner still has it for the client's next try", async () => {
    const { a, b, c, engines, hangEngine } = hubs(0, 20, { settleLeaseMs: 60 });
    const { handle, lastSeen } = await talkingOn(a);
    const unblock = hangEngine("b");
    // Two resumes on B: the second waits for the first, and gets its failure rather than taking the session again.
    const [one, two] = await Promise.all([b.resume(handle.resumeToken, lastSeen, sink()).catch((err: unknown) => err), b.resume(handle.resumeToken, lastSeen, sink()).catch((err: unknown) => err)]);
    for (const failure of [one, two]) expect(failure).toMatchObject({ code: ErrorCode.ERROR_CODE_ENGINE, retryable: true, message: expect.stringContaining("did not open the moved session within 60 ms") });
    expect([a.unsettled, b.unsettled]).toEqual([1, 0]);
    const third = sink();
    const moved = await c.resume(handle.resumeToken, lastSeen, third);
    expect(moved.session.expectedSeq).toBe(1);
    // B's engine opens at last: what B built is closed at the confirmation it no longer makes.
    unblock();
    for (let i = 0; i < 100 && !(engines.b.sessions.length > 0 && engines.b.sessions.every((s) => s.closed)); i++) await new Promise((r) => setTimeout(r, 2));
    expect(engines.b.sessions.length).toBeGreaterThan(0);
    expect(engines.b.sessions.every((s) => s.closed)).toBe(true);
    expect(b.size).toBe(0);
    expect(a.unsettled).toBe(0);
  });

  it("hands on a session it is still taking only once it holds it, and a draining taker sends the session it took on at once", async () => {
    const { a, b, holdSettlements } = hubs(0);
    const handle = await a.create(TestClient.config(), sink());
    handle.session.acceptInput(chunk(0, "one"));
    await handle.session.whenIdle();
    const unblock = holdSettlements("b");
    const bSink = sink();
    const taking = b.resume(handle.resumeToken, 0, bSink);
    for (let i = 0; i < 200 && a.size > 0; i++) await new Promise((r) => setTimeout(r, 1));
    // B drains meanwhile: the take counts as a session it must settle before it stops.
    b.drain(1000);
    expect(b.unsettled).toBe(1);
    // C asks B for it (the owner sent it there): B answers once its own take is done.
    const handedOn = b.handOff(handle.resumeToken, 0, "grpc://c:1");
    let answered = false;
    handedOn.then(
      () => (answered = true),
      () => (answered = true),
    );
    await new Promise((r) => setTimeout(r, 20));
    expect(answered).toBe(false);
    unblock();
    const moved = await taking;
    expect(cases(bSink.events).slice(0, 1)).toEqual(["started"]);
    expect(cases(bSink.events)).toContain("goAway");
    const result = await handedOn;
    expect("snapshot" in result && result.snapshot.sessionId).toBe(moved.session.id);
  });

  it("moves sessions to and from sidecars from before Settle: an owner that keeps no copy, a taker that does not confirm", async () => {
    const { a, b, hangEngine } = hubs(0, 20, { settleLeaseMs: 30 }, { b: { take: async (_owner, token, lastEventSeq) => a.handOff(token, lastEventSeq, "grpc://b:1", false) } });
    const handle = await a.create(TestClient.config(), sink());
    handle.session.acceptInput(chunk(0, "one"));
    await handle.session.whenIdle();
    // A taker that will not confirm: A lets go as soon as the state is sent, and gives no hand-over id.
    const result = await a.handOff(handle.resumeToken, 0, "grpc://old:1", false);
    expect("snapshot" in result && result.handoverId).toBe("");
    expect(a.unsettled).toBe(0);
    expect(await a.handOff(handle.resumeToken, 0, "grpc://c:1")).toEqual({ movedTo: "grpc://old:1" });
    // An owner that gives no hand-over id: the taker builds the session without a settlement, and waits for an
    // engine slower than its lease (giving up would lose the session: that owner kept no copy).
    const second = await a.create(TestClient.config(), sink());
    const unblock = hangEngine("b");
    setTimeout(unblock, 80);
    const moved = await b.resume(second.resumeToken, 0, sink());
    expect(moved.session.id).toBe(second.session.id);
    expect([a.unsettled, b.size]).toEqual([0, 1]);
  });

  it("gives the same hand-over again to the taker that asks twice (its first answer lost)", async () => {
    const { a } = hubs(0);
    const handle = await a.create(TestClient.config(), sink());
    handle.session.acceptInput(chunk(0, "one"));
    await handle.session.whenIdle();
    const once = await a.handOff(handle.resumeToken, 0, "grpc://b:1");
    const twice = await a.handOff(handle.resumeToken, 0, "grpc://b:1");
    if (!("snapshot" in once) || !("snapshot" in twice)) throw new Error("expected the session's state");
    expect(twice.handoverId).toBe(once.handoverId);
    expect(twice.snapshot).toEqual(once.snapshot);
    // Another sidecar waits while the lease runs; a confirmation naming another hand-over is refused.
    await expect(a.handOff(handle.resumeToken, 0, "grpc://c:1")).rejects.toMatchObject({ code: ErrorCode.ERROR_CODE_RESOURCE_EXHAUSTED, retryable: true });
    expect(a.settle(handle.resumeToken, "another", "grpc://c:1")).toMatchObject({ result: "refused" });
    expect(a.settle(handle.resumeToken, once.handoverId, "grpc://b:1")).toEqual({ result: "settled" });
    expect(a.unsettled).toBe(0);
    expect(await a.handOff(handle.resumeToken, 0, "grpc://c:1")).toEqual({ movedTo: "grpc://b:1" });
  });

  it("follows a session that moved on: a client back with its first token, through a third sidecar, reaches it where it went", async () => {
    const { a, b, c, taken } = hubs(0);
    const { handle, lastSeen } = await talkingOn(a);
    // Moved to B; the client never heard B's started (its stream dropped) and comes back through C with A's token.
    await b.resume(handle.resumeToken, lastSeen, sink());
    const third = sink();
    const moved = await c.resume(handle.resumeToken, lastSeen, third);
    expect(taken).toEqual(["grpc://a:1", "grpc://a:1", "grpc://b:1"]);
    expect([a.size, b.size, c.size]).toEqual([0, 0, 1]);
    expect(third.events[0]).toMatchObject({ event: { $case: "started", value: { resumed: true, nextInputSeq: 1 } } });
    moved.session.acceptInput(chunk(1, "two"));
    await moved.session.whenIdle();
    expect(outputs(third.events)).toEqual(["1:TWO"]);
    // Back at A with the first token: A sends the resume on (B, then C) itself.
    const back = sink();
    const again = await a.resume(handle.resumeToken, third.events.at(-1)!.eventSeq, back);
    expect(again.session.id).toBe(handle.session.id);
    expect([a.size, b.size, c.size]).toEqual([1, 0, 0]);
    expect(again.session.expectedSeq).toBe(2);
  });

  it("lets a second resume of a session being taken wait for the first, and gives it the session without another take", async () => {
    const { a, b, taken } = hubs(0);
    const handle = await a.create(TestClient.config(), sink());
    handle.session.acceptInput(chunk(0, "one"));
    await handle.session.whenIdle();
    const firstTry = b.resume(handle.resumeToken, 0, sink());
    const secondTry = b.resume(handle.resumeToken, 0, sink());
    const [one, two] = await Promise.all([firstTry, secondTry]);
    expect(two).toBe(one);
    expect(taken).toEqual(["grpc://a:1"]);
    expect(b.size).toBe(1);
  });
});
