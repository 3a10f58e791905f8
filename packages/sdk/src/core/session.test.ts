import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ErrorCode, PROTOCOL_VERSION, TaskStatus } from "@microturn/protocol";
import { Microturn } from "../client.js";
import { AbortError, BadRequestError, MicroturnError, TimeoutError, UnauthenticatedError } from "./error.js";
import { InvalidInputError, ProtocolVersionError, SessionClosedError } from "./session-errors.js";
import { BackgroundTaskError } from "./background-task.js";
import type { InteractionSession } from "./session.js";
import { type FakeSidecar, startFakeSidecar } from "../testing/fake-sidecar.js";
import { bytesToInt16 } from "../internal/pcm.js";

let fake: FakeSidecar;
const open: InteractionSession[] = [];

async function connect(client: Microturn = new Microturn({ url: fake.url, clock: "manual" }), config = {}): Promise<InteractionSession> {
  const session = await client.connect(config);
  open.push(session);
  return session;
}

beforeEach(async () => {
  fake = await startFakeSidecar();
});

afterEach(async () => {
  for (const session of open.splice(0)) await session.close({ timeoutMs: 500 });
  await fake.close();
});

describe("connect", () => {
  it("sends SessionStart with the protocol version and config, and resolves on SessionStarted", async () => {
    const session = await connect(new Microturn({ url: fake.url, clock: "manual" }), { instructions: "be brief", labels: { app: "t" } });
    expect(session.id).toBe(fake.session().id);
    expect(session.started?.protocolVersion).toBe(PROTOCOL_VERSION);
    expect(session.state).toBe("open");
    expect(fake.session().config.instructions).toBe("be brief");
    expect(fake.session().config.inputSampleRateHz).toBe(16_000);
    expect(fake.session().config.chunkDurationMs).toBe(200);
    expect(fake.session().config.labels).toEqual({ app: "t" });
  });

  it("accepts host:port without a scheme", async () => {
    const session = await connect(new Microturn({ url: fake.url.replace("grpc://", ""), clock: "manual" }));
    expect(session.state).toBe("open");
  });

  it("refuses a server with another major protocol version", async () => {
    await fake.close();
    fake = await startFakeSidecar({ protocolVersion: "2.0" });
    const client = new Microturn({ url: fake.url, clock: "manual" });
    const error = await client.connect().catch((e: unknown) => e);
    expect(ProtocolVersionError.isInstance(error)).toBe(true);
    expect((error as ProtocolVersionError).serverVersion).toBe("2.0");
    expect((error as Error).message).toMatch(/2\.0/);
    await fake.waitFor(() => fake.session().ended);
  });

  it("sends the API key as a bearer token and maps a refusal to UnauthenticatedError", async () => {
    await fake.close();
    fake = await startFakeSidecar({ apiKey: "sekret" });
    const refused = await new Microturn({ url: fake.url, apiKey: "wrong", clock: "manual" }).connect().catch((e: unknown) => e);
    expect(UnauthenticatedError.isInstance(refused)).toBe(true);
    expect((refused as UnauthenticatedError).grpcCode).toBe(16);
    expect((refused as UnauthenticatedError).retryable).toBe(false);
    const session = await connect(new Microturn({ url: fake.url, apiKey: "sekret", clock: "manual" }));
    expect(session.state).toBe("open");
  });

  it("rejects with TimeoutError when the server never answers SessionStarted", async () => {
    const silent = { open: () => ({ send: () => undefined, end: () => undefined, cancel: () => undefined }), close: () => undefined };
    const client = new Microturn({ transport: () => silent, connectTimeoutMs: 30, clock: "manual" });
    const session = client.session();
    const events: string[] = [];
    session.on("error", () => events.push("error"));
    session.on("close", ({ error }) => events.push(`close:${error?.name}`));
    const error = await session.connect().catch((e: unknown) => e);
    expect(TimeoutError.isInstance(error)).toBe(true);
    expect(events).toEqual(["close:TimeoutError"]);
    expect(session.state).toBe("closed");
    expect(String(error)).toMatch(/30 ms/);
  });

  it("rejects with AbortError when the signal fires", async () => {
    const controller = new AbortController();
    controller.abort();
    const error = await new Microturn({ url: fake.url }).connect({}, { signal: controller.signal }).catch((e: unknown) => e);
    expect(AbortError.isInstance(error)).toBe(true);
  });

  it("fails with a typed error when nothing listens", async () => {
    const port = Number(new URL(fake.url.replace("grpc", "http")).port);
    await fake.close();
    const error = await new Microturn({ url: `127.0.0.1:${port}`, clock: "manual" }).connect().catch((e: unknown) => e);
    expect(MicroturnError.isInstance(error)).toBe(true);
    fake = await startFakeSidecar();
  });
});

describe("input framing (manual clock)", () => {
  it("cuts contiguous 200 ms chunks with text, 16 kHz PCM and video frames", async () => {
    const session = await connect();
    session.sendText("hel");
    session.sendText("lo");
    session.sendAudio(new Float32Array(9600).fill(0.5), 48_000);
    session.sendVideoFrame(new Uint8Array(41 * 33 * 3).fill(7), 41, 33, { offsetMs: 120 });
    const first = session.flushChunk();
    const second = session.flushChunk();
    expect([first.seq, first.startMs, first.durationMs]).toEqual([0, 0, 200]);
    expect([second.seq, second.startMs]).toEqual([1, 200]);
    await fake.waitFor(() => fake.session().accepted.length === 2);
    const [c0, c1] = fake.session().chunks;
    expect(c0!.text).toBe("hello");
    expect(c0!.pcm?.sampleRateHz).toBe(16_000);
    const samples = bytesToInt16(c0!.pcm!.pcm16);
    expect(samples.length).toBeGreaterThan(3150);
    expect(samples.length).toBeLessThanOrEqual(3200);
    expect(samples[100]).toBe(16384);
    expect(c0!.frames).toHaveLength(1);
    expect([c0!.frames[0]!.widthPx, c0!.frames[0]!.heightPx, c0!.frames[0]!.offsetMs]).toEqual([41, 33, 120]);
    expect(c1!.text).toBe("");
    expect(c1!.frames).toHaveLength(0);
  });

  it("carries audio beyond one chunk over to the next", async () => {
    const session = await connect();
    session.sendAudio(new Int16Array(4800).fill(3), 16_000);
    expect(session.pendingAudioMs).toBe(300);
    session.flushChunk();
    expect(session.pendingAudioMs).toBe(100);
    session.flushChunk();
    await fake.waitFor(() => fake.session().accepted.length === 2);
    const lengths = fake.session().chunks.map((c) => bytesToInt16(c.pcm!.pcm16).length);
    expect(lengths).toEqual([3200, 1600]);
  });

  it("keeps every sample when the input rate changes: the old rate's resampler gives up what it held back", async () => {
    const session = await connect();
    // 100 ms at 48 kHz, then 100 ms at 16 kHz: 200 ms in all, one whole chunk.
    session.sendAudio(new Float32Array(4800).fill(0.25), 48_000);
    session.sendAudio(new Int16Array(1600).fill(100), 16_000);
    expect(session.pendingAudioMs).toBe(200);
  });

  it("sendChunk sends one chunk from its parts", async () => {
    const session = await connect();
    const chunk = session.sendChunk({ text: "x", audio: { samples: new Int16Array(3200), sampleRateHz: 16_000 }, userSpeaking: true });
    expect(chunk.seq).toBe(0);
    await fake.waitFor(() => fake.session().accepted.length === 1);
    expect(fake.session().chunks[0]!.userSpeaking).toBe(true);
    expect(fake.session().chunks[0]!.text).toBe("x");
  });

  it("sendChunk with one bad part adds none of its parts", async () => {
    const session = await connect();
    const frame = { rgb: new Uint8Array(40 * 40 * 3), width: 40, height: 40 };
    expect(() => session.sendChunk({ text: "lost?", audio: { samples: new Float32Array([Number.NaN]), sampleRateHz: 16_000 } })).toThrow(InvalidInputError);
    expect(() => session.sendChunk({ text: "lost?", frames: [{ ...frame, offsetMs: -5 }] })).toThrow(/offsetMs/);
    // More audio than may wait to be framed (60 s by default).
    expect(() => session.sendChunk({ text: "lost?", audio: { samples: new Int16Array(16_000 * 61), sampleRateHz: 16_000 } })).toThrow(/waiting to be framed/);
    session.sendChunk({ text: "kept" });
    await fake.waitFor(() => fake.session().accepted.length === 1);
    expect(fake.session().chunks.map((c) => c.text)).toEqual(["kept"]);
    expect(fake.session().chunks[0]!.frames).toEqual([]);
  });

  it("keeps a chunk under the size a message may take: a frame past it is refused, and the chunk goes out without it (the stream once died on it, resume after resume)", async () => {
    const session = await connect();
    const hd = { rgb: new Uint8Array(1920 * 1080 * 3), width: 1920, height: 1080 };
    session.sendVideoFrame(hd.rgb, hd.width, hd.height);
    session.sendVideoFrame(hd.rgb, hd.width, hd.height);
    expect(() => session.sendVideoFrame(hd.rgb, hd.width, hd.height)).toThrow(/a 1920x1080 video frame \(5\.9 MiB\) would make chunk 0 17\.8 MiB, over the 15\.9 MiB/);
    expect(() => session.sendChunk({ text: "lost?", frames: [hd] })).toThrow(InvalidInputError);
    session.sendChunk({ text: "two frames" });
    // A chunk with all three in one call is refused whole, before anything is added.
    expect(() => session.sendChunk({ text: "lost?", frames: [hd, hd, hd] })).toThrow(/its text and video/);
    session.sendChunk({ text: "then this" });
    await fake.waitFor(() => fake.session().accepted.length === 2);
    expect(fake.session().chunks.map((c) => [c.text, c.frames.length])).toEqual([
      ["two frames", 2],
      ["then this", 0],
    ]);
    expect(session.state).toBe("open");
  });

  it("requireToolCall sets tool_choice on the next chunk only; a blank name is refused before anything is queued", async () => {
    const session = await connect();
    expect(() => session.sendChunk({ text: "lost?", toolChoice: " " })).toThrow(/tool name/);
    session.requireToolCall("get_weather");
    session.sendText("weather?");
    session.flushChunk();
    session.sendChunk({ text: "and then", toolChoice: "get_time" });
    session.flushChunk();
    await fake.waitFor(() => fake.session().accepted.length === 3);
    expect(fake.session().chunks.map((c) => [c.text, c.toolChoice])).toEqual([
      ["weather?", "get_weather"],
      ["and then", "get_time"],
      ["", ""],
    ]);
  });
});

describe("input framing (realtime clock)", () => {
  it("cuts a chunk every 200 ms of wall time", async () => {
    const session = await connect(new Microturn({ url: fake.url, clock: "realtime" }));
    session.sendText("now");
    await fake.waitFor(() => fake.session().accepted.length >= 2, 3000);
    const chunks = fake.session().chunks;
    expect(chunks[0]!.text).toBe("now");
    expect(chunks.map((c) => c.startMs).slice(0, 2)).toEqual([0, 200]);
  });
});

describe("outputs", () => {
  it("emits typed events, async-iterates events and text deltas", async () => {
    const session = await connect();
    const outputs: string[] = [];
    session.on("output", (chunk, meta) => {
      outputs.push(chunk.text);
      expect(meta.eventSeq).toBeGreaterThan(0);
    });
    const texts: string[] = [];
    const reading = (async () => {
      for await (const text of session.text()) texts.push(text);
    })();
    const types: string[] = [];
    const iterating = (async () => {
      for await (const event of session) types.push(event.type);
    })();
    session.sendText("hi");
    session.flushChunk();
    session.flushChunk();
    await fake.waitFor(() => outputs.length === 2);
    await session.close();
    await Promise.all([reading, iterating]);
    expect(outputs).toEqual(["echo: hi", ""]);
    expect(texts).toEqual(["echo: hi"]);
    expect(types).toContain("inputAck");
    expect(types).toContain("output");
    expect(types.at(-1)).toBe("close");
  });

  it("yields output audio from session.audio()", async () => {
    await fake.close();
    fake = await startFakeSidecar({
      reply: () => ({ audio: { sampleRateHz: 24_000, channels: 1, pcm16: Buffer.from(new Int16Array([1, -2, 3]).buffer) } }),
    });
    const session = await connect();
    const reading = (async () => {
      for await (const audio of session.audio()) return audio;
    })();
    session.flushChunk();
    const audio = await reading;
    expect(audio?.sampleRateHz).toBe(24_000);
    expect(Array.from(audio!.samples)).toEqual([1, -2, 3]);
  });
});

describe("control events", () => {
  it("sends playback acks and interrupts (defaulting to the last ack)", async () => {
    const session = await connect();
    session.ackPlayback(400);
    session.interrupt();
    session.interrupt(650);
    await fake.waitFor(() => fake.session().interrupts.length === 2);
    expect(fake.session().playback).toEqual([400]);
    expect(fake.session().interrupts).toEqual([400, 650]);
  });
});

describe("background tasks", () => {
  it("delegate resolves with the final result and streams updates", async () => {
    const session = await connect();
    const task = session.delegate("find flights", { timeoutMs: 1000 });
    const statuses: TaskStatus[] = [];
    for await (const update of task.updates()) statuses.push(update.status);
    expect(await task).toBe("result of find flights");
    expect(statuses).toEqual([TaskStatus.TASK_STATUS_RUNNING, TaskStatus.TASK_STATUS_DONE]);
    expect(fake.session().delegates[0]).toMatchObject({ taskId: task.id, task: "find flights", timeoutMs: 1000 });
  });

  it("rejects with typed errors for failed, timed-out and cancelled tasks", async () => {
    await fake.close();
    fake = await startFakeSidecar({
      backgroundStepMs: 20,
      background: (task) =>
        task.task === "fail"
          ? [{ status: TaskStatus.TASK_STATUS_FAILED, errorMessage: "no route" }]
          : task.task === "slow"
            ? [{ status: TaskStatus.TASK_STATUS_TIMED_OUT }]
            : [{ status: TaskStatus.TASK_STATUS_RUNNING, content: "…" }, { status: TaskStatus.TASK_STATUS_RUNNING }],
    });
    const session = await connect();
    await expect(session.delegate("fail").result).rejects.toSatisfy((e) => BackgroundTaskError.isInstance(e) && /no route/.test(String(e)));
    await expect(session.delegate("slow").result).rejects.toSatisfy((e) => TimeoutError.isInstance(e));
    const cancelled = session.delegate("long");
    cancelled.cancel();
    await expect(cancelled.result).rejects.toSatisfy((e) => AbortError.isInstance(e));
    const controller = new AbortController();
    const aborted = session.delegate("long too", { signal: controller.signal });
    controller.abort();
    await expect(aborted.result).rejects.toSatisfy((e) => AbortError.isInstance(e));
    await fake.waitFor(() => fake.session().cancelled.length === 2);
    expect(fake.session().cancelled).toEqual([cancelled.id, aborted.id]);
  });
});

describe("background tasks, edges", () => {
  it("empties a task's streamed content when it starts over (QUEUED again after a move to another sidecar)", async () => {
    await fake.close();
    fake = await startFakeSidecar({
      backgroundStepMs: 10,
      background: () => [
        { status: TaskStatus.TASK_STATUS_RUNNING, content: "half an ans" },
        { status: TaskStatus.TASK_STATUS_QUEUED },
        { status: TaskStatus.TASK_STATUS_RUNNING, content: "a fresh start" },
      ],
    });
    const session = await connect();
    const task = session.delegate("restartable");
    const seen: string[] = [];
    for await (const update of task.updates()) {
      seen.push(task.content);
      if (seen.length === 3) break;
    }
    expect(seen).toEqual(["half an ans", "", "a fresh start"]);
  });

  it("aborting a delegate's signal while the session closes neither throws nor hangs", async () => {
    const session = await connect();
    const controller = new AbortController();
    const task = session.delegate("never finishes", { signal: controller.signal });
    const closing = session.close();
    expect(() => controller.abort()).not.toThrow();
    await closing;
    await expect(task.result).rejects.toSatisfy((e) => AbortError.isInstance(e) || SessionClosedError.isInstance(e));
  });

  it("lets a finished task go: its id can serve again", async () => {
    const session = await connect();
    const first = session.delegate("find flights", { taskId: "t-1" });
    expect(await first).toBe("result of find flights");
    await new Promise((resolve) => setImmediate(resolve));
    expect(() => session.delegate("find hotels", { taskId: "t-1" })).not.toThrow();
  });
});

describe("tools", () => {
  it("answers tool calls from registered handlers; throws and timeouts become is_error", async () => {
    const client = new Microturn({ url: fake.url, clock: "manual" });
    const session = client.session();
    session.tools.register("add", { description: "adds", parameters: { type: "object" } }, (args) => {
      const { a, b } = args as { a: number; b: number };
      return { sum: a + b };
    });
    session.tools.register("boom", { description: "fails" }, () => {
      throw new Error("tool broke");
    });
    session.tools.register("slow", { description: "hangs", timeoutMs: 50 }, (_args, ctx) => new Promise((resolve) => ctx.signal.addEventListener("abort", resolve)));
    await session.connect();
    open.push(session);
    expect(fake.session().config.tools.map((t) => t.name)).toEqual(["add", "boom", "slow"]);
    expect(JSON.parse(fake.session().config.tools[0]!.parametersJson)).toEqual({ type: "object" });
    const server = fake.session();
    expect(await server.callTool("add", { a: 2, b: 3 })).toMatchObject({ outputJson: '{"sum":5}', isError: false });
    const broke = await server.callTool("boom", {});
    expect(broke.isError).toBe(true);
    expect(broke.outputJson).toMatch(/tool broke/);
    const slow = await server.callTool("slow", {}, 0);
    expect(slow.isError).toBe(true);
    expect(slow.outputJson).toMatch(/timed out after 50 ms/);
    const unknown = await server.callTool("nope", {});
    expect(unknown.isError).toBe(true);
    expect(() => session.tools.register("late", { description: "" }, () => 1)).toThrow(/before connect/);
  });

  it("leaves calls to tools without a handler to a toolCall listener, which answers with sendToolResult", async () => {
    const session = await connect();
    session.on("toolCall", (call) => {
      session.sendToolResult({ callId: call.callId, outputJson: `{"manual":"${call.name}"}`, isError: false });
    });
    const result = await fake.session().callTool("lookup", { q: 1 });
    expect(result).toMatchObject({ outputJson: '{"manual":"lookup"}', isError: false });
  });

  it("leaves calls without a handler to an app reading every event with for await, which answers them", async () => {
    const session = await connect();
    void (async () => {
      for await (const event of session) {
        if (event.type !== "toolCall") continue;
        await new Promise((resolve) => setTimeout(resolve, 10));
        session.sendToolResult({ callId: event.data.callId, outputJson: '{"sky":"sunny"}', isError: false });
      }
    })();
    const result = await fake.session().callTool("weather", { city: "Oslo" });
    expect(result).toMatchObject({ outputJson: '{"sky":"sunny"}', isError: false });
  });

  it("answers unknown tool when the app reads only text(), which shows no tool calls", async () => {
    const session = await connect();
    void (async () => {
      for await (const _ of session.text());
    })();
    const result = await fake.session().callTool("weather", {});
    expect(result.isError).toBe(true);
    expect(result.outputJson).toMatch(/unknown tool/);
  });
});

describe("errors from the server", () => {
  it("emits non-fatal SessionErrors as typed error events and stays usable", async () => {
    const session = await connect();
    const errors: MicroturnError[] = [];
    session.on("error", (error) => errors.push(error));
    fake.session().sendError(ErrorCode.ERROR_CODE_INVALID_ARGUMENT, "bad chunk");
    await fake.waitFor(() => errors.length === 1);
    expect(BadRequestError.isInstance(errors[0])).toBe(true);
    session.sendText("still here");
    session.flushChunk();
    await fake.waitFor(() => fake.session().accepted.length === 1);
  });

  it("closes the session on a fatal SessionError", async () => {
    const session = await connect();
    const closed = new Promise<unknown>((resolve) => session.on("close", ({ error }) => resolve(error)));
    const errors: MicroturnError[] = [];
    session.on("error", (error) => errors.push(error));
    fake.session().sendError(ErrorCode.ERROR_CODE_INTERNAL, "engine died", { fatal: true });
    fake.session().detach((peer) => peer.end());
    const error = await closed;
    expect(errors).toHaveLength(1);
    expect(error).toBe(errors[0]);
    expect(session.state).toBe("closed");
    expect(() => session.sendText("x")).toThrow(SessionClosedError);
  });
});

describe("bad input and closed sessions", () => {
  it("refuses bad audio, frames and times with InvalidInputError", async () => {
    const session = await connect();
    for (const rate of [0, -16000, 44_100.5, 1_000_000, Number.NaN]) {
      expect(() => session.sendAudio(new Int16Array(10), rate)).toThrow(InvalidInputError);
    }
    expect(() => session.sendAudio(new Float32Array([0, Number.NaN]), 16_000)).toThrow(/sample 1 is NaN/);
    expect(() => session.sendAudio(new Float32Array([Number.POSITIVE_INFINITY]), 16_000)).toThrow(InvalidInputError);
    expect(() => session.sendAudio([1, 2] as unknown as Int16Array, 16_000)).toThrow(InvalidInputError);
    expect(() => session.sendVideoFrame(new Uint8Array(10), 2, 2)).toThrow(/needs 12 RGB bytes/);
    expect(() => session.sendVideoFrame(new Uint8Array(0), 0, 0)).toThrow(InvalidInputError);
    expect(() => session.sendVideoFrame(new Uint8Array(3), 1.5, 2)).toThrow(InvalidInputError);
    expect(() => session.ackPlayback(-1)).toThrow(InvalidInputError);
    expect(() => session.interrupt(Number.NaN)).toThrow(InvalidInputError);
    expect(() => session.delegate("")).toThrow(InvalidInputError);
    expect(() => session.sendText(42 as unknown as string)).toThrow(InvalidInputError);
    session.flushChunk();
    await fake.waitFor(() => fake.session().accepted.length === 1);
    expect(fake.session().chunks[0]!.pcm).toBeUndefined();
  });

  it("throws SessionClosedError for every call after close, and before connect", async () => {
    const client = new Microturn({ url: fake.url, clock: "manual" });
    const idle = client.session();
    expect(() => idle.sendText("x")).toThrow(/before connect/);
    const session = await connect(client);
    const task = session.delegate("never finishes");
    await session.close();
    await expect(task.result).rejects.toSatisfy((e) => SessionClosedError.isInstance(e) || AbortError.isInstance(e));
    const calls: Array<() => unknown> = [
      () => session.sendText("x"),
      () => session.sendAudio(new Int16Array(1), 16_000),
      () => session.sendVideoFrame(new Uint8Array(3), 1, 1),
      () => session.flushChunk(),
      () => session.sendChunk({}),
      () => session.ackPlayback(1),
      () => session.interrupt(),
      () => session.delegate("t"),
      () => session.cancelTask("t"),
    ];
    for (const call of calls) expect(call).toThrow(SessionClosedError);
    await expect(session.connect()).rejects.toThrow(SessionClosedError);
    await session.close();
    expect(fake.session().ended).toBe(true);
  });

  it("refuses options out of range at construction with InvalidInputError naming the option", async () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ chunkDurationMs: -200 }, /chunkDurationMs must be an integer from 10 to 10000, got -200/],
      [{ chunkDurationMs: 0 }, /chunkDurationMs/],
      [{ chunkDurationMs: 10.01 }, /chunkDurationMs/],
      [{ connectTimeoutMs: Number.NaN }, /connectTimeoutMs/],
      [{ closeTimeoutMs: 2 ** 31 }, /closeTimeoutMs/],
      [{ maxUnackedChunks: 0 }, /maxUnackedChunks/],
      [{ clock: "wall" }, /clock must be "realtime" or "manual"/],
      [{ reconnect: { jitter: Number.NaN } }, /reconnect\.jitter must be a number from 0 to 1, got NaN/],
      [{ reconnect: { maxAttempts: -1 } }, /reconnect\.maxAttempts/],
      [{ connectTimeoutMs: Number.NEGATIVE_INFINITY }, /connectTimeoutMs/],
    ];
    for (const [options, message] of cases) {
      const construct = () => new Microturn({ url: fake.url, ...options });
      expect(construct).toThrow(InvalidInputError);
      expect(construct).toThrow(message);
    }
    // Per session too, before any transport is made.
    const client = new Microturn({ url: fake.url, clock: "manual" });
    expect(() => client.session({}, { chunkDurationMs: Number.POSITIVE_INFINITY })).toThrow(InvalidInputError);
    const fine = client.session({}, { chunkDurationMs: 100, reconnect: { jitter: 0.5, multiplier: 1.5 } });
    expect(fine.state).toBe("idle");
    await fine.close();
    // What worked before the checks still does: Infinity for "no limit", 0 to close without waiting, jitter taken into 0..1.
    const unlimited = client.session({}, {
      connectTimeoutMs: Number.POSITIVE_INFINITY,
      closeTimeoutMs: 0,
      maxUnackedChunks: Number.POSITIVE_INFINITY,
      reconnect: { maxAttempts: Number.POSITIVE_INFINITY, attemptTimeoutMs: Number.POSITIVE_INFINITY, maxDelayMs: Number.POSITIVE_INFINITY, jitter: 2, multiplier: 0.5 },
    });
    await unlimited.close();
  });

  it("a second close() resolves when the session has closed, with the first", async () => {
    const session = await connect();
    const first = session.close();
    const second = session.close();
    expect(session.state).toBe("closing");
    await second;
    expect(session.state).toBe("closed");
    await first;
  });

  it("session.started follows the SessionStarted of each resume", async () => {
    const session = await connect(new Microturn({ url: fake.url, clock: "manual", reconnect: { initialDelayMs: 1 } }));
    const firstToken = session.started!.resumeToken;
    const reconnected = new Promise((resolve) => session.once("reconnected", resolve));
    fake.goAway();
    await reconnected;
    expect(session.started!.resumed).toBe(true);
    expect(session.started!.resumeToken).toBe(fake.session().resumeToken);
    expect(session.started!.resumeToken).not.toBe(firstToken);
  });

  it("sends pending input on close", async () => {
    const session = await connect();
    session.sendText("last words");
    await session.close();
    expect(fake.session().chunks.map((c) => c.text)).toEqual(["last words"]);
  });
});
