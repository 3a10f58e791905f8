import { ContextSource, FinishReason, Modality } from "@microturn/protocol";
import { SGLANG_ROUTING_HEADER } from "@microturn/sdk";
import { FakeSglangServer, type FakeSglangServerOptions } from "@microturn/sdk/testing";
import { afterEach, describe, expect, it } from "vitest";
import type { AppendOptions, AppendResult, Engine, EngineChunk, EngineSession } from "../engine.js";
import { EngineError } from "../errors.js";
import { createSglangHttpEngine } from "./index.js";

const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanup.length > 0) await cleanup.pop()!();
});

async function setup(options: FakeSglangServerOptions = {}, engineOptions: { sessionTimeoutS?: number; timeoutMs?: number } = {}) {
  const server = await FakeSglangServer.start({ maxReqInputLen: 2048, modelPath: "org/interaction-7b", ...options });
  cleanup.push(() => server.close());
  const engine = await createSglangHttpEngine({ url: server.url, ...engineOptions });
  cleanup.push(() => engine.dispose());
  return { server, engine };
}

const chunk = (seq: number, text?: string, extra: Partial<EngineChunk> = {}): EngineChunk => ({
  seq,
  startMs: seq * 200,
  durationMs: 200,
  ...(text !== undefined ? { text } : {}),
  ...extra,
});

async function turn(session: EngineSession, c: EngineChunk, options: AppendOptions): Promise<{ text: string; done: AppendResult; positions: number[] }> {
  let text = "";
  const positions: number[] = [];
  let done: AppendResult | undefined;
  for await (const out of session.append(c, options)) {
    if (out.type === "delta") {
      text += out.text;
      positions.push(out.positionTokens);
    } else done = out.done;
  }
  if (!done) throw new Error("append ended without done");
  return { text, done, positions };
}

async function engineError(promise: Promise<unknown>): Promise<EngineError> {
  try {
    await promise;
  } catch (error) {
    if (EngineError.isInstance(error)) return error;
    throw error;
  }
  throw new Error("expected an EngineError");
}

describe("sglang-http engine", () => {
  it("reports capabilities from the server's model and server info", async () => {
    const { engine } = await setup();
    expect(engine.capabilities).toEqual({
      engine: "sglang-http",
      modelId: "org/interaction-7b",
      inputModalities: [Modality.MODALITY_TEXT],
      outputModalities: [Modality.MODALITY_TEXT],
      supportsRewind: false,
      maxContextTokens: 2047, // SGLang refuses an input of max_req_input_len tokens
      randomWeights: false,
    });
    expect(await engine.health()).toEqual({ serving: true, activeSessions: 0 });
  });

  it("runs micro-turns on one streaming session: rendering, budget, positions", async () => {
    const { server, engine } = await setup({ respond: ({ inputText }) => (inputText.includes("hello") ? "hi there" : "") });
    const session = await engine.openSession({ capacityTokens: 1024, systemPrompt: "You are brief." });
    expect(server.requests.at(-2)!.body).toEqual({ capacity_of_str_len: 1024, session_id: session.id, streaming: true, timeout: 300 });
    // The system prompt is prefilled at open (nothing generated), so the position counts it before any chunk.
    expect(server.requests.at(-1)!.body).toEqual({
      text: "You are brief.",
      stream: true,
      sampling_params: { max_new_tokens: 0 },
      session_params: { id: session.id },
    });
    const promptTokens = 1 + "You are brief.".length; // BOS + one token per character
    expect(session.positionTokens).toBe(promptTokens);

    const first = await turn(session, chunk(0, "hello", { context: [{ source: ContextSource.CONTEXT_SOURCE_BACKGROUND, text: "sunny", refId: "task-1" }] }), {
      maxOutputTokens: 4,
      temperature: 0,
      stop: ["\n"],
    });
    expect(first.text).toBe("hi t");
    const firstInput = '<t=0.0s><background ref="task-1">sunny</background>hello';
    expect(server.requests.at(-1)!.body).toEqual({
      text: firstInput,
      stream: true,
      sampling_params: { max_new_tokens: 4, stop: ["\n"], temperature: 0 },
      session_params: { id: session.id },
    });
    const firstInputEnd = promptTokens + firstInput.length;
    expect(first.done).toMatchObject({
      finishReason: FinishReason.FINISH_REASON_LENGTH,
      inputEndTokens: firstInputEnd,
      inputTokens: firstInput.length,
      outputTokens: 4,
      positionTokens: firstInputEnd + 4,
    });
    expect(first.positions).toEqual([1, 2, 3, 4].map((n) => firstInputEnd + n));
    expect(session.positionTokens).toBe(firstInputEnd + 4);

    // Silence: the model ends its turn at once (EOS only).
    const second = await turn(session, chunk(1), { maxOutputTokens: 4 });
    expect(second.text).toBe("");
    expect(server.requests.at(-1)!.body).toMatchObject({ text: "<t=0.2s>" });
    expect(second.done).toMatchObject({ finishReason: FinishReason.FINISH_REASON_SILENT, inputTokens: 8, outputTokens: 1 });
    expect(session.positionTokens).toBe(firstInputEnd + 4 + 8 + 1);
    expect(session.stats()).toMatchObject({ positionTokens: session.positionTokens, appends: 2, capacityTokens: 1024 });
    expect(server.session(session.id)!.tokens).toBe(session.positionTokens);

    // Budget 0 appends input only.
    const third = await turn(session, chunk(2, "hello"), { maxOutputTokens: 0 });
    expect(third.done).toMatchObject({ outputTokens: 0, inputTokens: 13, finishReason: FinishReason.FINISH_REASON_LENGTH });
    const sessionRequests = server.requests.filter((r) => r.path === "/generate" || r.path.endsWith("_session"));
    expect(sessionRequests).toHaveLength(5);
    expect(sessionRequests.every((r) => r.headers[SGLANG_ROUTING_HEADER.toLowerCase()] === session.id)).toBe(true);
  });

  it("works against a server with incremental streaming output", async () => {
    const { engine } = await setup({ incrementalStreamingOutput: true, respond: () => "ok then" });
    const session = await engine.openSession();
    const { text, done } = await turn(session, chunk(0, "x"), { maxOutputTokens: 16 });
    expect(text).toBe("ok then");
    expect(done.finishReason).toBe(FinishReason.FINISH_REASON_STOP);
    expect(done.outputTokens).toBe(8);
  });

  it("refuses rewind (append-only) but accepts a no-op and range-checks", async () => {
    const { engine } = await setup();
    const session = await engine.openSession();
    await turn(session, chunk(0, "ab"), { maxOutputTokens: 2 });
    const position = session.positionTokens;
    expect(await session.rewind(position)).toBe(position);
    const refused = await engineError(session.rewind(position - 1));
    expect(refused.code).toBe("invalid_argument");
    expect(refused.message).toMatch(/append-only/);
    expect((await engineError(session.rewind(position + 1))).code).toBe("rewind_out_of_range");
  });

  it("maps failures to engine error codes", async () => {
    const { server, engine } = await setup({ tokenDelayMs: 10, maxReqInputLen: 64 }, { sessionTimeoutS: 0.5 });
    const session = await engine.openSession({ capacityTokens: 63 });
    const audio = { frames: 16, channels: 80, codes: new Uint8Array(640) };
    expect((await engineError(turn(session, chunk(0, "x", { audio }), { maxOutputTokens: 1 }))).code).toBe("unsupported_modality");
    expect((await engineError(turn(session, chunk(0, "x"), { maxOutputTokens: -1 }))).code).toBe("invalid_argument");
    expect((await engineError(turn(session, chunk(0, "y".repeat(80)), { maxOutputTokens: 1 }))).code).toBe("too_large");
    expect((await engineError(engine.openSession({ capacityTokens: 64 }))).code).toBe("too_large");
    // Greedy unless asked: SGLang's default temperature (1.0) would sample.
    const generate = server.requests.filter((r) => r.path === "/generate").at(-1)!.body as { sampling_params: Record<string, unknown> };
    expect(generate.sampling_params.temperature).toBe(0);
    expect((await engineError(engine.openSession({ sessionId: session.id }))).code).toBe("invalid_argument");

    // One append in flight.
    const running = session.append(chunk(0, "abcdef"), { maxOutputTokens: 6 })[Symbol.asyncIterator]();
    await running.next();
    const busy = await engineError(turn(session, chunk(1, "x"), { maxOutputTokens: 1 }));
    expect(busy.code).toBe("busy");
    expect(busy.retryable).toBe(true);
    // A rewind while the append runs is refused the same way (engines.md), even one to where the session is.
    expect((await engineError(session.rewind(session.positionTokens))).code).toBe("busy");
    for (let step = await running.next(); !step.done; step = await running.next());

    // The server reaps the idle session: unknown_session.
    await new Promise((resolve) => setTimeout(resolve, 800));
    const gone = await engineError(turn(session, chunk(1, "x"), { maxOutputTokens: 1 }));
    expect(gone.code).toBe("unknown_session");
    expect(gone.sessionId).toBe(session.id);

    server.injectAbort({ message: "The request queue is full.", statusCode: 503 });
    const other = await engine.openSession({ capacityTokens: 63 });
    expect((await engineError(turn(other, chunk(0, "x"), { maxOutputTokens: 1 }))).code).toBe("unavailable");
    await other.close();
    expect((await engineError(turn(other, chunk(1, "x"), { maxOutputTokens: 1 }))).code).toBe("session_closed");

    server.healthy = false;
    expect((await engineError(engine.health())).code).toBe("unavailable");
  });

  it("refuses forceTool before sending anything, and the session goes on", async () => {
    const { server, engine } = await setup({ respond: () => "ok" });
    const session = await engine.openSession();
    await turn(session, chunk(0, "one"), { maxOutputTokens: 2 });
    const before = session.positionTokens;
    const sent = server.requests.length;
    const refused = await engineError(turn(session, chunk(1, "two"), { maxOutputTokens: 4, forceTool: { name: "lookup_contact", parametersJson: "{}" } }));
    expect(refused.code).toBe("invalid_argument");
    expect(refused.message).toMatch(/sglang-http.*"lookup_contact"/);
    expect(server.requests).toHaveLength(sent);
    expect(session.positionTokens).toBe(before);
    const next = await turn(session, chunk(1, "two"), { maxOutputTokens: 2 });
    expect(next.done.inputEndTokens - next.done.inputTokens).toBe(before);
  });

  it("aborts through the signal; the position stays at the last finished turn", async () => {
    const { server, engine } = await setup({ tokenDelayMs: 10, respond: () => "a long answer" });
    const session = await engine.openSession();
    await turn(session, chunk(0, "one"), { maxOutputTokens: 2 });
    const before = session.positionTokens;
    const controller = new AbortController();
    const aborted = await engineError(
      (async () => {
        for await (const out of session.append(chunk(1, "two"), { maxOutputTokens: 10, signal: controller.signal })) {
          if (out.type === "delta") controller.abort();
        }
      })(),
    );
    expect(aborted.code).toBe("aborted");
    expect(session.positionTokens).toBe(before);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(server.session(session.id)).toMatchObject({ tokens: before, inFlight: false });
    const next = await turn(session, chunk(2, "three"), { maxOutputTokens: 2 });
    expect(next.done.inputTokens).toBe(8 + 5);
  });

  it("reports unavailable when the server disappears mid-turn or is not there", async () => {
    const { server, engine } = await setup();
    const session = await engine.openSession();
    server.faultNextStream(1, "drop");
    expect((await engineError(turn(session, chunk(0, "abc"), { maxOutputTokens: 3 }))).code).toBe("unavailable");
    const url = server.url;
    await server.close();
    expect((await engineError(engine.health())).code).toBe("unavailable");
    const unreachable = await engineError(createSglangHttpEngine({ url }));
    expect(unreachable.code).toBe("unavailable");
    expect(unreachable.message).toContain(url);
  });

  it("refuses a server without streaming sessions, and closes its sessions on dispose", async () => {
    const plain = await FakeSglangServer.start({ enableStreamingSession: false });
    cleanup.push(() => plain.close());
    const refused = await engineError(createSglangHttpEngine({ url: plain.url }));
    expect(refused.message).toMatch(/--enable-streaming-session/);

    const { server, engine } = await setup();
    const a = await engine.openSession();
    await engine.openSession();
    await a.close();
    expect(server.openSessionIds()).toHaveLength(1);
    expect((await engine.health()).activeSessions).toBe(1);
    await (engine as Engine).dispose();
    expect(server.openSessionIds()).toEqual([]);
  });
});
