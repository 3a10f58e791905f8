// Reconnect and resume over real gRPC: drops, GoAway, lost chunks, give-up.
import { OutputChunk } from "@microturn/protocol";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Microturn } from "../client.js";
import { ConnectionError, NotFoundError } from "../core/error.js";
import type { InteractionSession } from "../core/session.js";
import type { ReconnectingInfo } from "../core/session-events.js";
import { type FakeSidecar, startFakeSidecar } from "../testing/fake-sidecar.js";
import { backoffDelayMs, resolveReconnectOptions } from "./backoff.js";

let fake: FakeSidecar;
const sessions: InteractionSession[] = [];

async function connect(reconnect = {}): Promise<InteractionSession> {
  const client = new Microturn({ url: fake.url, clock: "manual", reconnect: { initialDelayMs: 5, maxDelayMs: 50, ...reconnect } });
  const session = await client.connect();
  sessions.push(session);
  return session;
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

beforeEach(async () => {
  fake = await startFakeSidecar();
});

afterEach(async () => {
  for (const session of sessions.splice(0)) await session.close({ timeoutMs: 500 });
  await fake.close();
});

describe("after SessionEnded", () => {
  it("passes on nothing a server sends after ended, and closes cleanly when the stream ends", async () => {
    const session = await connect();
    const seen: string[] = [];
    session.on("output", (o) => seen.push(`output ${o.text}`));
    session.on("ended", (e) => seen.push(`ended ${e.reason}`));
    session.on("error", (e) => seen.push(`error ${e.message}`));
    const closed = new Promise<Error | undefined>((resolve) => session.on("close", ({ error }) => resolve(error)));
    const output = (text: string) => ({ $case: "output" as const, value: OutputChunk.fromPartial({ text }) });
    fake.session().send(output("before"));
    fake.session().send({ $case: "ended", value: { reason: "done", chunks: 0, recordingPath: "" } });
    fake.session().send(output("after"));
    fake.session().send({ $case: "error", value: { code: 13, message: "late", retryable: false, seq: 0, eventId: "", fatal: false } });
    fake.session().detach((peer) => peer.end());
    expect(await closed).toBeUndefined();
    expect(seen).toEqual(["output before", "ended done"]);
  });
});

describe("resume after a dropped stream", () => {
  it("delivers every chunk exactly once and no server event twice", async () => {
    const session = await connect();
    const reconnecting: ReconnectingInfo[] = [];
    let reconnected = 0;
    session.on("reconnecting", (info) => reconnecting.push(info));
    session.on("reconnected", () => reconnected++);
    const outputSeqs: number[] = [];
    session.on("output", (chunk) => outputSeqs.push(chunk.seq));

    for (let i = 0; i < 5; i++) session.sendChunk({ text: `a${i}` });
    await fake.waitFor(() => fake.session().accepted.length === 5);
    fake.dropStream();
    // Chunks cut while the stream is down (or before the client noticed) wait in the resend buffer.
    for (let i = 5; i < 10; i++) session.sendChunk({ text: `b${i}` });
    await fake.waitFor(() => reconnected === 1);
    for (let i = 10; i < 12; i++) session.sendChunk({ text: `c${i}` });
    await fake.waitFor(() => fake.session().accepted.length === 12 && outputSeqs.length === 12);

    expect(fake.session().accepted).toEqual(range(12));
    expect(fake.session().chunks.map((c) => c.text).slice(4, 6)).toEqual(["a4", "b5"]);
    expect(outputSeqs).toEqual(range(12));
    expect(reconnecting[0]?.attempt).toBe(1);
    expect(reconnecting[0]?.error?.name).toBe("UnavailableError");
    expect(fake.session().resumes).toBe(1);
    await fake.waitFor(() => session.unackedSeqs.length === 0);
  });

  it("survives repeated drops under the realtime clock with every seq exactly once", async () => {
    const client = new Microturn({ url: fake.url, clock: "realtime", chunkDurationMs: 20, reconnect: { initialDelayMs: 2, maxDelayMs: 20 } });
    const session = await client.connect();
    sessions.push(session);
    let reconnected = 0;
    session.on("reconnected", () => reconnected++);
    const feeding = setInterval(() => session.sendAudio(new Int16Array(320).fill(1), 16_000), 20);
    try {
      for (let drop = 1; drop <= 4; drop++) {
        await new Promise((resolve) => setTimeout(resolve, 120));
        fake.dropStream();
        await fake.waitFor(() => reconnected === drop);
      }
      await new Promise((resolve) => setTimeout(resolve, 60));
    } finally {
      clearInterval(feeding);
    }
    await fake.waitFor(() => session.unackedSeqs.length === 0 && fake.session().accepted.length >= session.nextSeq - 1);
    await session.close();
    expect(session.nextSeq).toBeGreaterThan(15);
    expect(fake.session().accepted).toEqual(range(session.nextSeq));
    expect(fake.session().resumes).toBe(4);
  });

  it("resends chunks the server never took (lost in transit before the drop)", async () => {
    let dropAt = 3;
    await fake.close();
    fake = await startFakeSidecar({
      loseInput: (chunk) => {
        if (chunk.seq !== dropAt) return false;
        dropAt = -1;
        setImmediate(() => fake.dropStream());
        return true;
      },
    });
    const session = await connect();
    for (let i = 0; i < 6; i++) session.sendChunk({ text: String(i) });
    await fake.waitFor(() => fake.session().accepted.length === 6);
    expect(fake.session().accepted).toEqual(range(6));
    expect(fake.session().chunks.map((c) => c.text)).toEqual(["0", "1", "2", "3", "4", "5"]);
    expect(fake.session().resumes).toBe(1);
    await fake.waitFor(() => session.unackedSeqs.length === 0);
  });

  it("repairs a seq gap by resending from the seq the server names", async () => {
    let lost = false;
    await fake.close();
    fake = await startFakeSidecar({
      loseInput: (chunk) => {
        if (chunk.seq !== 2 || lost) return false;
        lost = true;
        return true;
      },
    });
    const session = await connect();
    const errors: string[] = [];
    session.on("error", (error) => errors.push(error.name));
    for (let i = 0; i < 5; i++) session.sendChunk({ text: String(i) });
    await fake.waitFor(() => fake.session().accepted.length === 5);
    expect(fake.session().accepted).toEqual(range(5));
    expect(errors[0]).toBe("OutOfRangeError");
  });

  it("follows a GoAway to a proactive resume with the new token", async () => {
    const session = await connect();
    const reconnecting: ReconnectingInfo[] = [];
    session.on("reconnecting", (info) => reconnecting.push(info));
    const goAways: string[] = [];
    session.on("goAway", (goAway) => goAways.push(goAway.reason));
    let reconnected = 0;
    session.on("reconnected", () => reconnected++);
    session.sendChunk({ text: "before" });
    await fake.waitFor(() => fake.session().accepted.length === 1);
    const firstToken = fake.session().resumeToken;
    fake.goAway(undefined, { reason: "drain", deadlineMs: 200 });
    session.sendChunk({ text: "during" });
    await fake.waitFor(() => reconnected === 1);
    session.sendChunk({ text: "after" });
    await fake.waitFor(() => fake.session().accepted.length === 3);
    expect(goAways).toEqual(["drain"]);
    expect(reconnecting[0]).toMatchObject({ attempt: 1, delayMs: 0, error: undefined });
    expect(fake.session().resumeToken).not.toBe(firstToken);
    expect(fake.session().accepted).toEqual([0, 1, 2]);
    expect(fake.streamsOpened).toBe(2);
  });

  it("replays server events missed while the stream was down", async () => {
    const session = await connect();
    const background: string[] = [];
    session.on("background", (update) => background.push(update.content));
    session.sendChunk({ text: "x" });
    await fake.waitFor(() => fake.session().accepted.length === 1);
    fake.dropStream();
    // Sent while no stream is attached: only the history has it.
    fake.session().send({
      $case: "background",
      value: { taskId: "m1", status: 2, content: "model task progress", delivery: 0, errorMessage: "", deliveredAtSeq: 0, fromModel: true, task: "t" },
    });
    await fake.waitFor(() => background.length === 1);
    expect(background).toEqual(["model task progress"]);
  });

  it("closes with NotFoundError when the server no longer knows the session", async () => {
    const session = await connect();
    const closed = new Promise<unknown>((resolve) => session.on("close", ({ error }) => resolve(error)));
    const errors: unknown[] = [];
    session.on("error", (error) => errors.push(error));
    const task = session.delegate("pending");
    fake.session().resumeToken = "forgotten";
    fake.dropStream();
    const error = await closed;
    expect(NotFoundError.isInstance(error)).toBe(true);
    // The refused resume reaches the app as an error event too, once.
    expect(errors).toEqual([error]);
    await expect(task.result).rejects.toSatisfy((e) => NotFoundError.isInstance(e));
    expect(session.state).toBe("closed");
  });

  it("gives up after maxAttempts with ConnectionError", async () => {
    const session = await connect({ maxAttempts: 3, initialDelayMs: 1, maxDelayMs: 2 });
    const attempts: number[] = [];
    session.on("reconnecting", (info) => attempts.push(info.attempt));
    const closed = new Promise<unknown>((resolve) => session.on("close", ({ error }) => resolve(error)));
    const iterating = (async () => {
      for await (const _event of session) {
        // drain
      }
    })();
    await fake.kill();
    const error = await closed;
    expect(ConnectionError.isInstance(error)).toBe(true);
    expect(String(error)).toMatch(/after 3 attempts/);
    expect(attempts).toEqual([1, 2, 3]);
    await expect(iterating).rejects.toSatisfy((e) => ConnectionError.isInstance(e));
    fake = await startFakeSidecar();
  });

  it("reaches a server that comes back while it retries: each attempt after a failed one opens a new connection", async () => {
    const port = Number(new URL(fake.url).port);
    const session = await connect({ maxAttempts: 10, initialDelayMs: 20, maxDelayMs: 50 });
    const closed = new Promise<unknown>((resolve) => session.on("close", ({ error }) => resolve(error)));
    await fake.kill();
    // Back on the same port after the first attempts failed to connect (a channel would now wait a second or more
    // before it tried again); a new sidecar that does not know the session, so the resume is refused, not lost.
    await new Promise((resolve) => setTimeout(resolve, 120));
    fake = await startFakeSidecar({ port });
    const error = await closed;
    expect(NotFoundError.isInstance(error)).toBe(true);
  });

  it("does not reconnect when reconnect is disabled", async () => {
    const session = await connect({ enabled: false });
    const closed = new Promise<unknown>((resolve) => session.on("close", ({ error }) => resolve(error)));
    fake.dropStream();
    expect((await closed as Error).name).toBe("UnavailableError");
  });

  it("refuses input beyond the resend buffer while disconnected, without skipping a seq", async () => {
    const client = new Microturn({ url: fake.url, clock: "manual", maxUnackedChunks: 3, reconnect: { initialDelayMs: 200, maxDelayMs: 200 } });
    const session = await client.connect();
    sessions.push(session);
    const reconnected = new Promise((resolve) => session.on("reconnected", resolve));
    fake.dropStream();
    await new Promise((resolve) => session.once("reconnecting", resolve));
    for (let i = 0; i < 3; i++) session.sendChunk({ text: String(i) });
    expect(() => session.sendChunk({ text: "overflow" })).toThrow(/waiting for the server's ack/);
    await reconnected;
    await fake.waitFor(() => session.unackedSeqs.length === 0);
    session.sendChunk({ text: "3" });
    await fake.waitFor(() => fake.session().accepted.length === 4);
    expect(fake.session().chunks.map((c) => c.text)).toEqual(["0", "1", "2", "3"]);
  });
});

describe("resend buffer under the realtime clock", () => {
  it("reports a full buffer as error events and cuts no chunk until acks return", async () => {
    let acking = false;
    await fake.close();
    fake = await startFakeSidecar({ loseInput: () => !acking });
    const client = new Microturn({ url: fake.url, clock: "realtime", chunkDurationMs: 20, maxUnackedChunks: 2, reconnect: { initialDelayMs: 1 } });
    const session = await client.connect();
    sessions.push(session);
    const errors: string[] = [];
    session.on("error", (error) => errors.push(error.name));
    await fake.waitFor(() => errors.length >= 3);
    expect(new Set(errors)).toEqual(new Set(["ResourceExhaustedError"]));
    expect(session.nextSeq).toBe(2);
    expect(session.state).toBe("open");
    // The server takes input again; a resume makes the client resend what it holds.
    acking = true;
    fake.dropStream();
    await fake.waitFor(() => fake.session().accepted.length >= 4);
    expect(fake.session().accepted.slice(0, 4)).toEqual([0, 1, 2, 3]);
  });
});

describe("backoff", () => {
  it("grows exponentially with full jitter up to the cap", () => {
    const options = resolveReconnectOptions({ initialDelayMs: 100, maxDelayMs: 1000, multiplier: 2 });
    expect([1, 2, 3, 4, 5].map((a) => backoffDelayMs(a, options, () => 1))).toEqual([100, 200, 400, 800, 1000]);
    expect(backoffDelayMs(3, options, () => 0)).toBe(0);
    const half = resolveReconnectOptions({ initialDelayMs: 100, jitter: 0.5 });
    expect(backoffDelayMs(1, half, () => 0)).toBe(50);
  });
});
