import { afterEach, describe, expect, it } from "vitest";
import {
  AbortError,
  APIError,
  ConnectionError,
  MicroturnError,
  NotFoundError,
  SessionBusyError,
  TimeoutError,
} from "../core/error.js";
import { FakeSglangServer, type FakeSglangServerOptions } from "../testing/sglang-server.js";
import { type GenerateDelta, SGLANG_ROUTING_HEADER, SglangClient } from "./client.js";

const opened: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  while (opened.length > 0) await opened.pop()!.close();
});

async function setup(options: FakeSglangServerOptions = {}, timeoutMs?: number) {
  const server = await FakeSglangServer.start(options);
  const client = new SglangClient({ baseUrl: server.url, ...(timeoutMs ? { timeoutMs } : {}) });
  opened.push(server, client);
  return { server, client };
}

async function text(stream: AsyncIterable<GenerateDelta>): Promise<string> {
  let out = "";
  for await (const delta of stream) out += delta.text;
  return out;
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected a rejection");
}

describe("StreamingSession", () => {
  it("appends micro-turns to one sequence and tracks its length", async () => {
    const { server, client } = await setup({ respond: ({ inputText, historyText }) => `${inputText.length}/${historyText.length}` });
    const session = await client.streamingSession({ capacityOfStrLen: 1024 });
    expect(await text(session.append("<t=0.0s>hi", { max_new_tokens: 16 }))).toBe("10/0");
    // BOS + 10 input tokens, then "10/0" + EOS.
    expect(session.positionTokens).toBe(16);
    // The second turn sees the first turn's input and output (BOS is stripped from appended turns).
    expect(await text(session.append("<t=0.2s>", { max_new_tokens: 16 }))).toBe("8/14");
    expect(session.positionTokens).toBe(16 + 8 + 5);
    expect(server.session(session.id)).toMatchObject({ tokens: 29, text: "<t=0.0s>hi10/0<t=0.2s>8/14", inFlight: false });
    const bodies = server.requests.filter((r) => r.path === "/generate").map((r) => r.body);
    expect(bodies[1]).toMatchObject({ text: "<t=0.2s>", stream: true, session_params: { id: session.id } });
    await session.close();
    await session.close();
    expect(server.openSessionIds()).toEqual([]);
    expect(server.requests.every((r) => r.headers[SGLANG_ROUTING_HEADER.toLowerCase()] === session.id)).toBe(true);
    await expect(text(session.append("late"))).rejects.toThrow(/closed/);
  });

  it("keeps concurrent sessions on one client apart", async () => {
    const { server, client } = await setup({ tokenDelayMs: 2, respond: ({ inputText }) => inputText.split("").reverse().join("") });
    const sessions = await Promise.all([0, 1, 2, 3, 4, 5].map(() => client.streamingSession({ capacityOfStrLen: 64 })));
    for (let round = 0; round < 3; round += 1) {
      const outputs = await Promise.all(sessions.map((session, i) => text(session.append(`s${i}r${round}`))));
      expect(outputs).toEqual(sessions.map((_, i) => `${round}r${i}s`));
    }
    for (const [i, session] of sessions.entries()) {
      expect(server.session(session.id)!.text).toBe([0, 1, 2].map((r) => `s${i}r${r}${r}r${i}s`).join(""));
    }
  });

  it("appends token ids and sends session_params.rid", async () => {
    const { server, client } = await setup();
    const session = await client.streamingSession({ capacityOfStrLen: 64 });
    await text(session.append([1, 16 + 104, 16 + 105], { max_new_tokens: 4 }, { rid: "turn-1" }));
    expect(server.requests.at(-1)!.body).toMatchObject({ input_ids: [1, 120, 121], rid: "turn-1", session_params: { id: session.id, rid: "turn-1" } });
    expect(session.lastMetaInfo?.id).toBe("turn-1");
  });

  it("refuses a second append in flight, locally and on the server", async () => {
    const { client } = await setup({ tokenDelayMs: 20 });
    const session = await client.streamingSession({ capacityOfStrLen: 64 });
    const first = session.append("abcdef")[Symbol.asyncIterator]();
    await first.next();
    expect(session.busy).toBe(true);
    const local = await rejection(text(session.append("x")));
    expect(SessionBusyError.isInstance(local)).toBe(true);
    // A second client on the same session hits SGLang's own guard (an abort finish reason).
    const remote = await rejection(text(client.generateStream({ text: "x", session_params: { id: session.id } })));
    expect(SessionBusyError.isInstance(remote)).toBe(true);
    expect((remote as APIError).retryable).toBe(true);
    expect((remote as APIError).message).toBe("Streaming session already has an active request.");
    for (let step = await first.next(); !step.done; step = await first.next());
    expect(session.busy).toBe(false);
  });

  it("reports a session closed by its idle timeout as NotFoundError", async () => {
    const { server, client } = await setup();
    const session = await client.streamingSession({ capacityOfStrLen: 64, timeoutS: 0.1 });
    await text(session.append("a"));
    await new Promise((resolve) => setTimeout(resolve, 250));
    expect(server.session(session.id)).toBeUndefined();
    const error = await rejection(text(session.append("b")));
    expect(NotFoundError.isInstance(error)).toBe(true);
    expect((error as APIError).sessionId).toBe(session.id);
  });

  it("aborts through the AbortSignal; the server rolls the turn back", async () => {
    const { server, client } = await setup({ tokenDelayMs: 15, respond: () => "long reply here" });
    const session = await client.streamingSession({ capacityOfStrLen: 64 });
    await text(session.append("one", { max_new_tokens: 3 }));
    const before = session.positionTokens;
    const controller = new AbortController();
    const seen: string[] = [];
    const error = await rejection(
      (async () => {
        for await (const delta of session.append("two", {}, { signal: controller.signal })) {
          seen.push(delta.text);
          if (seen.length === 2) controller.abort();
        }
      })(),
    );
    expect(AbortError.isInstance(error)).toBe(true);
    expect(seen).toEqual(["l", "o"]);
    expect(session.positionTokens).toBe(before);
    await waitFor(() => server.session(session.id)?.inFlight === false);
    expect(server.session(session.id)!.tokens).toBe(before);
    // A signal aborted before the call never reaches the server.
    const count = server.requests.length;
    expect(AbortError.isInstance(await rejection(text(session.append("x", {}, { signal: AbortSignal.abort() }))))).toBe(true);
    expect(server.requests.length).toBe(count);
  });

  it("leaving the loop early closes the request, and the session stays usable", async () => {
    const { server, client } = await setup({ tokenDelayMs: 10, respond: () => "abcdefgh" });
    const session = await client.streamingSession({ capacityOfStrLen: 64 });
    for await (const delta of session.append("x")) {
      expect(delta.text).toBe("a");
      break;
    }
    await waitFor(() => server.session(session.id)?.inFlight === false);
    expect(await text(session.append("y", { max_new_tokens: 2 }))).toBe("ab");
  });

  it("throws ConnectionError when the server disappears mid-stream", async () => {
    const { server, client } = await setup();
    const session = await client.streamingSession({ capacityOfStrLen: 64 });
    server.faultNextStream(2, "drop");
    const seen: string[] = [];
    const error = await rejection(
      (async () => {
        for await (const delta of session.append("abcdef")) seen.push(delta.text);
      })(),
    );
    expect(seen).toEqual(["A", "B"]);
    expect(ConnectionError.isInstance(error)).toBe(true);
    expect(session.busy).toBe(false);
  });

  it("throws TimeoutError when a stream stalls past timeoutMs", async () => {
    const { server, client } = await setup({}, 200);
    server.faultNextStream(1, "stall");
    const error = await rejection(text(client.generateStream({ text: "abc" })));
    expect(TimeoutError.isInstance(error)).toBe(true);
    expect((error as TimeoutError).message).toContain("200 ms");
  });

  it("throws ConnectionError when nothing listens", async () => {
    const server = await FakeSglangServer.start();
    const url = server.url;
    await server.close();
    const client = new SglangClient({ baseUrl: url });
    opened.push(client);
    const error = await rejection(client.openSession({ capacityOfStrLen: 1 }));
    expect(ConnectionError.isInstance(error)).toBe(true);
    expect(MicroturnError.isInstance(error)).toBe(true);
    expect((error as Error).message).toContain(url);
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 2000): Promise<void> {
  const start = Date.now();
  while (!condition()) {
    if (Date.now() - start > timeoutMs) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
