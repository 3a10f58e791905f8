import { status } from "@grpc/grpc-js";
import { FinishReason } from "@microturn/protocol";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { EchoEngine } from "../echo/index.js";
import type { AppendOptions, AppendResult, EngineChunk, EngineSession } from "../engine.js";
import { EngineError } from "../errors.js";
import { codeForStatus, createSglangGrpcEngine, type SglangGrpcEngine } from "./index.js";
import { startTestServer, type TestServer } from "./test-server.js";

const chunk = (seq: number, text: string): EngineChunk => ({ seq, startMs: seq * 200, durationMs: 200, text });

async function run(session: EngineSession, c: EngineChunk, options: AppendOptions): Promise<{ text: string; done: AppendResult }> {
  let text = "";
  let done: AppendResult | undefined;
  for await (const out of session.append(c, options)) {
    if (out.type === "delta") text += out.text;
    else done = out.done;
  }
  return { text, done: done! };
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  expect(EngineError.isInstance(error), `expected an EngineError, got ${String(error)}`).toBe(true);
  return (error as EngineError).code;
}

describe("sglang-grpc adapter against a StreamingSession server on loopback", () => {
  let server: TestServer;
  let slowServer: TestServer;
  let engine: SglangGrpcEngine;

  beforeAll(async () => {
    server = await startTestServer(new EchoEngine());
    slowServer = await startTestServer(new EchoEngine({ tokenDelayMs: 100 }));
    engine = await createSglangGrpcEngine({ address: server.address, timeoutMs: 5000 });
  });
  afterAll(async () => {
    await engine?.dispose();
    await server?.stop();
    await slowServer?.stop();
  });

  it("opens, appends with streamed output, rewinds and closes, tracking positions from the server", async () => {
    expect(engine.capabilities).toMatchObject({ engine: "sglang-grpc", modelId: "echo", supportsRewind: true });
    const session = await engine.openSession({ systemPrompt: "be brief", capacityTokens: 1000 });
    expect(session.positionTokens).toBe(2);
    const first = await run(session, chunk(0, "hello there world"), { maxOutputTokens: 2 });
    expect(first.text).toBe("hello there");
    expect(first.done).toMatchObject({ finishReason: FinishReason.FINISH_REASON_LENGTH, outputTokens: 2 });
    expect(session.positionTokens).toBe(first.done.positionTokens);
    const mark = session.positionTokens;
    const second = await run(session, chunk(1, ""), { maxOutputTokens: 4 });
    expect(second.done.finishReason).toBe(FinishReason.FINISH_REASON_SILENT);
    expect(await session.rewind(mark)).toBe(mark);
    expect(session.positionTokens).toBe(mark);
    expect(server.sessions.get(session.id)?.positionTokens).toBe(mark);
    expect(session.stats()).toMatchObject({ appends: 2, capacityTokens: 1000 });
    expect((await engine.health()).activeSessions).toBeGreaterThanOrEqual(1);
    await session.close();
    expect(server.sessions.has(session.id)).toBe(false);
    expect(await codeOf(run(session, chunk(2, "x"), { maxOutputTokens: 1 }))).toBe("session_closed");
  });

  it("maps engine failures reported by the server to the same EngineError codes", async () => {
    const session = await engine.openSession();
    expect(await codeOf(session.rewind(session.positionTokens + 5))).toBe("rewind_out_of_range");
    expect(await codeOf(run(session, chunk(0, "a b c"), { maxOutputTokens: 1e9 }))).toBe("too_large");
    expect(await codeOf(run(session, chunk(0, "a"), { maxOutputTokens: -1 }))).toBe("invalid_argument");
    // The session vanishes on the server (idle timeout, restart): NOT_FOUND.
    await server.sessions.get(session.id)!.close();
    server.sessions.delete(session.id);
    expect(await codeOf(run(session, chunk(0, "a"), { maxOutputTokens: 1 }))).toBe("unknown_session");
    expect(await codeOf(session.rewind(session.positionTokens + 1))).toBe("unknown_session");
    // A rewind to where the session is needs no server, as on every engine.
    expect(await session.rewind(session.positionTokens)).toBe(session.positionTokens);
    await session.close(); // already gone on the server: still closes cleanly
  });

  it("maps every gRPC status of an Append stream", async () => {
    const session = await engine.openSession();
    const cases: Array<[status, string]> = [
      [status.NOT_FOUND, "unknown_session"],
      [status.OUT_OF_RANGE, "rewind_out_of_range"],
      [status.FAILED_PRECONDITION, "busy"],
      [status.ABORTED, "busy"],
      [status.UNAVAILABLE, "unavailable"],
      [status.RESOURCE_EXHAUSTED, "too_large"],
      [status.INVALID_ARGUMENT, "invalid_argument"],
      [status.CANCELLED, "aborted"],
      [status.INTERNAL, "internal"],
    ];
    for (const [code, expected] of cases) {
      expect(await codeOf(run(session, chunk(0, `!status:${code}`), { maxOutputTokens: 1 }))).toBe(expected);
    }
    // The session is still usable after every failure.
    expect((await run(session, chunk(1, "still here"), { maxOutputTokens: 2 })).text).toBe("still here");
    expect(codeForStatus(status.FAILED_PRECONDITION, "open")).toBe("invalid_argument");
    await session.close();
  });

  it("refuses a second append in flight, honours deadlines and AbortSignal", async () => {
    const slow = await createSglangGrpcEngine({ address: slowServer.address, timeoutMs: 250 });
    try {
      const session = await slow.openSession();
      const first = session.append(chunk(0, "one two three four five six"), { maxOutputTokens: 6 })[Symbol.asyncIterator]();
      const pending = first.next();
      expect(await codeOf(run(session, chunk(1, "x"), { maxOutputTokens: 1 }))).toBe("busy");
      // Six tokens at 100 ms each outlive the 250 ms deadline.
      expect(await codeOf((async () => { await pending; while (!(await first.next()).done); })())).toBe("unavailable");

      const controller = new AbortController();
      setTimeout(() => controller.abort(), 50);
      expect(await codeOf(run(session, chunk(2, "a b c d"), { maxOutputTokens: 4, signal: controller.signal }))).toBe("aborted");
      const ok = await run(session, chunk(3, "hi"), { maxOutputTokens: 1 });
      expect(ok.text).toBe("hi");
      const aborted = new AbortController();
      aborted.abort();
      expect(await codeOf(slow.openSession({ signal: aborted.signal }))).toBe("aborted");
    } finally {
      await slow.dispose();
    }
  });

  it("refuses forceTool before sending anything, and the session goes on", async () => {
    const session = await engine.openSession({ systemPrompt: "be brief" });
    const before = session.positionTokens;
    const refused = await run(session, chunk(0, "call someone"), { maxOutputTokens: 4, forceTool: { name: "lookup_contact", parametersJson: "{}" } }).catch((e: unknown) => e);
    expect(EngineError.isInstance(refused) && refused.code).toBe("invalid_argument");
    expect((refused as EngineError).message).toMatch(/sglang-grpc.*"lookup_contact"/);
    expect(server.sessions.get(session.id)?.positionTokens).toBe(before);
    expect(session.positionTokens).toBe(before);
    const next = await run(session, chunk(0, "call someone"), { maxOutputTokens: 1 });
    expect(next.done.inputEndTokens - next.done.inputTokens).toBe(before);
    await session.close();
  });

  /** Appends "one two three four five six" and cancels it after its second delta; the positions the deltas reported. */
  async function cancelAfterTwoDeltas(session: EngineSession, seq: number): Promise<number[]> {
    const controller = new AbortController();
    const positions: number[] = [];
    const cancelled = (async () => {
      for await (const out of session.append(chunk(seq, "one two three four five six"), { maxOutputTokens: 6, signal: controller.signal })) {
        if (out.type !== "delta") continue;
        positions.push(out.positionTokens);
        if (positions.length === 2) controller.abort();
      }
    })();
    expect(await codeOf(cancelled)).toBe("aborted");
    return positions;
  }

  it("stands where a cancelled append began, as the servicer inside SGLang rolls the turn back", async () => {
    const rollingBack = await startTestServer(new EchoEngine({ tokenDelayMs: 20 }), { rollBackUnfinished: true });
    const remote = await createSglangGrpcEngine({ address: rollingBack.address, timeoutMs: 5000 });
    try {
      const session = await remote.openSession({ systemPrompt: "be brief" });
      await run(session, chunk(0, "hello"), { maxOutputTokens: 1 });
      const before = session.positionTokens;
      const positions = await cancelAfterTwoDeltas(session, 1);
      expect(positions.at(-1)).toBeGreaterThan(before);
      // Right after the cancel, before any later call.
      expect(session.positionTokens).toBe(before);
      expect(session.stats()).toMatchObject({ positionTokens: before, appends: 1 });
      await vi.waitFor(() => expect(rollingBack.sessions.get(session.id)?.positionTokens).toBe(before));
      // The cancelled output is gone: rewinding into it is refused, not answered locally.
      expect(await codeOf(session.rewind(positions.at(-1)!))).toBe("rewind_out_of_range");
      const next = await run(session, chunk(2, "again and again"), { maxOutputTokens: 2 });
      expect(next.done.inputEndTokens - next.done.inputTokens).toBe(before);
      expect(session.positionTokens).toBe(rollingBack.sessions.get(session.id)?.positionTokens);
      expect(await session.rewind(before)).toBe(before);
      expect(rollingBack.sessions.get(session.id)?.positionTokens).toBe(before);
    } finally {
      await remote.dispose();
      await rollingBack.stop();
    }
  });

  it("after a cancelled append on a server that keeps the partial turn, a rewind to where it began reaches the server", async () => {
    const keeping = await startTestServer(new EchoEngine({ tokenDelayMs: 20 }));
    const remote = await createSglangGrpcEngine({ address: keeping.address, timeoutMs: 5000 });
    try {
      const session = await remote.openSession({ systemPrompt: "be brief" });
      const before = session.positionTokens;
      const positions = await cancelAfterTwoDeltas(session, 0);
      expect(session.positionTokens).toBe(before);
      await vi.waitFor(() => expect(keeping.sessions.get(session.id)?.positionTokens).toBeGreaterThanOrEqual(positions.at(-1)!));
      // The server may still be winding the turn down (busy) for a moment.
      await vi.waitFor(async () => expect(await session.rewind(before)).toBe(before));
      expect(keeping.sessions.get(session.id)?.positionTokens).toBe(before);
      // Confirmed now: a rewind to where the session is needs no server again.
      await keeping.sessions.get(session.id)!.close();
      expect(await session.rewind(before)).toBe(before);
    } finally {
      await remote.dispose();
      await keeping.stop();
    }
  });

  it("reports unavailable when nothing listens", async () => {
    const stopped = await startTestServer(new EchoEngine());
    await stopped.stop();
    expect(await codeOf(createSglangGrpcEngine({ address: stopped.address, timeoutMs: 1000 }))).toBe("unavailable");
  });
});
