// A session moving between two hubs in one process, through the real
// snapshot encoding: what was queued runs once on the taker, event numbers go
// on where the client left off, and the taker's model starts from the
// conversation so far.
import { ErrorCode, SessionSnapshot, type ServerEvent } from "@microturn/protocol";
import { describe, expect, it } from "vitest";
import { EngineError } from "../src/engines/errors.js";
import { PeerKey } from "../src/handoff/peer-key.js";
import { createLogger } from "../src/logger.js";
import { SessionHub } from "../src/session/session-hub.js";
import { FakeEngine } from "./helpers/fake-engine.js";
import { TestClient } from "./helpers/test-client.js";

const KEY = new PeerKey("a peer key of at least thirty-two characters");
const logger = createLogger("error");

function sink() {
  const events: ServerEvent[] = [];
  return { events, send: (event: ServerEvent) => void events.push(event) };
}

/** Hub A holds the session, hub B takes it; A lets its queued turns run `releaseWaitMs` before it cuts them. */
function hubs(delayMs: number, releaseWaitMs = 20) {
  const engines = { a: new FakeEngine({ delayMs }), b: new FakeEngine({ delayMs }) };
  const options = { limits: { maxOutputTokensPerTurn: 32, maxQueuedChunks: 50 }, maxSessions: 8, resumeGraceMs: 5000, recordDir: "", logger };
  const taken: string[] = [];
  const a: SessionHub = new SessionHub({
    ...options,
    engine: engines.a,
    handoff: { key: KEY, selfUrl: "grpc://a:1", take: async () => Promise.reject(new Error("a takes nothing here")), releaseWaitMs },
  });
  const b = new SessionHub({
    ...options,
    engine: engines.b,
    handoff: {
      key: KEY,
      selfUrl: "grpc://b:1",
      // Through the wire format, as a real Take goes.
      take: async (owner, token, lastEventSeq) => {
        taken.push(owner);
        const snapshot = await a.handOff(token, lastEventSeq, "grpc://b:1");
        return SessionSnapshot.decode(SessionSnapshot.encode(snapshot).finish());
      },
    },
  });
  return { a, b, engines, taken };
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
    // The token is spent on A: a second take finds nothing.
    await expect(a.handOff(handle.resumeToken, 0, "grpc://c:1")).rejects.toMatchObject({ code: ErrorCode.ERROR_CODE_NOT_FOUND });
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
    const first = sink();
    const handle = await a.create(TestClient.config(), first);
    handle.session.acceptInput(chunk(0, "one"));
    await handle.session.whenIdle();
    const lastSeen = first.events.at(-1)!.eventSeq;
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
});
