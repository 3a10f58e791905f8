import { afterEach, describe, expect, it } from "vitest";
import {
  APIError,
  BadRequestError,
  FailedPreconditionError,
  ContextLengthExceededError,
  MicroturnError,
  NotFoundError,
  ResourceExhaustedError,
  UnauthenticatedError,
  UnavailableError,
} from "../core/error.js";
import { FakeSglangServer, type FakeSglangServerOptions } from "../testing/sglang-server.js";
import { type GenerateDelta, SGLANG_ROUTING_HEADER, SglangClient } from "./client.js";

const opened: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  while (opened.length > 0) await opened.pop()!.close();
});

async function setup(options: FakeSglangServerOptions = {}, clientOptions: Partial<ConstructorParameters<typeof SglangClient>[0]> = {}) {
  const server = await FakeSglangServer.start(options);
  const client = new SglangClient({ baseUrl: server.url, ...clientOptions });
  opened.push(server, client);
  return { server, client };
}

async function collect(stream: AsyncIterable<GenerateDelta>): Promise<GenerateDelta[]> {
  const deltas: GenerateDelta[] = [];
  for await (const delta of stream) deltas.push(delta);
  return deltas;
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected a rejection");
}

describe("SglangClient /generate", () => {
  it("returns text, ids and meta_info, and sends the key and routing headers", async () => {
    const { server, client } = await setup({ apiKey: "k1" }, { apiKey: "k1", routingKey: "user-7" });
    const result = await client.generate({ text: "hello", sampling_params: { max_new_tokens: 32, temperature: 0 } });
    expect(result.text).toBe("HELLO");
    expect(result.finishReason).toEqual({ type: "stop", matched: 2 });
    expect(result.metaInfo.prompt_tokens).toBe(6); // BOS + 5
    expect(result.metaInfo.completion_tokens).toBe(6); // 5 + EOS
    expect(result.tokenIds).toHaveLength(6);
    const recorded = server.requests.at(-1)!;
    expect(recorded.headers.authorization).toBe("Bearer k1");
    expect(recorded.headers[SGLANG_ROUTING_HEADER.toLowerCase()]).toBe("user-7");
    expect(recorded.body).toMatchObject({ text: "hello", stream: false, sampling_params: { max_new_tokens: 32, temperature: 0 } });
  });

  it("stops at the token budget and trims a matched stop string", async () => {
    const { client } = await setup({ respond: () => "one. two. three." });
    const short = await client.generate({ text: "x", sampling_params: { max_new_tokens: 3 } });
    expect(short).toMatchObject({ text: "one", finishReason: { type: "length", length: 3 } });
    const stopped = await client.generate({ text: "x", sampling_params: { stop: [" two"] } });
    expect(stopped).toMatchObject({ text: "one.", finishReason: { type: "stop", matched: " two" } });
  });

  for (const incremental of [false, true]) {
    it(`streams deltas of new text only (${incremental ? "incremental" : "cumulative"} server)`, async () => {
      const { server, client } = await setup({ incrementalStreamingOutput: incremental, respond: () => "abcabc" });
      const deltas = await collect(client.generateStream({ text: "q", sampling_params: { max_new_tokens: 20 } }));
      expect(deltas.map((d) => d.text)).toEqual(["a", "b", "c", "a", "b", "c", ""]);
      expect(deltas.every((d) => d.tokenIds?.length === 1)).toBe(true);
      expect(deltas.at(-1)!.finishReason).toEqual({ type: "stop", matched: 2 });
      expect(deltas.at(-1)!.metaInfo.completion_tokens).toBe(7);
      expect(deltas.slice(0, -1).every((d) => d.finishReason === undefined)).toBe(true);
      expect(server.requests.at(-1)!.headers.accept).toBe("text/event-stream");
    });
  }

  it("keeps multi-byte characters whole when an event is split across reads", async () => {
    const { client } = await setup({ splitWrites: true, respond: () => "héllo wörld ✓ 🎧" });
    const deltas = await collect(client.generateStream({ text: "x" }));
    expect(deltas.map((d) => d.text).join("")).toBe("héllo wörld ✓ 🎧");
  });

  it("takes token ids as input and streams max_new_tokens 0 as one finished event", async () => {
    const { client } = await setup();
    const deltas = await collect(client.generateStream({ input_ids: [1, 20, 21], sampling_params: { max_new_tokens: 0 } }));
    expect(deltas).toHaveLength(1);
    expect(deltas[0]).toMatchObject({ text: "", finishReason: { type: "length", length: 0 } });
    expect(deltas[0]!.metaInfo.prompt_tokens).toBe(3);
  });
});

describe("SglangClient errors", () => {
  it("maps SGLang's error bodies to typed errors", async () => {
    const { client } = await setup({ maxReqInputLen: 8 });
    const unknownKey = await rejection(client.generate({ text: "x", sampling_params: { bogus: 1 } as never }));
    expect(BadRequestError.isInstance(unknownKey)).toBe(true);
    expect((unknownKey as APIError).message).toMatch(/unknown field `bogus`/);
    expect((unknownKey as APIError).status).toBe(400);

    const noInput = await rejection(client.generate({}));
    expect(BadRequestError.isInstance(noInput)).toBe(true);
    expect((noInput as Error).message).toBe("Either text, input_ids or input_embeds should be provided.");

    const streamedNoInput = await rejection(collect(client.generateStream({ sampling_params: { max_new_tokens: -1 } })));
    expect(BadRequestError.isInstance(streamedNoInput)).toBe(true);
    expect((streamedNoInput as APIError).status).toBe(400);

    const tooLong = await rejection(collect(client.generateStream({ text: "0123456789" })));
    expect(ContextLengthExceededError.isInstance(tooLong)).toBe(true);
    expect(BadRequestError.isInstance(tooLong)).toBe(true);
    expect((tooLong as Error).message).toMatch(/exceeds the maximum allowed length \(8 tokens\)/);
  });

  it("rejects a wrong API key with UnauthenticatedError", async () => {
    const { client } = await setup({ apiKey: "right" }, { apiKey: "wrong" });
    const error = await rejection(client.generate({ text: "x" }));
    expect(UnauthenticatedError.isInstance(error)).toBe(true);
    expect((error as APIError).status).toBe(401);
    // Health stays open without a key, as in SGLang.
    await expect(client.health()).resolves.toBeUndefined();
  });

  it("turns abort finish reasons into typed errors by status", async () => {
    const { server, client } = await setup();
    server.injectAbort({ message: "The request queue is full.", statusCode: 503, errType: null });
    const queued = await rejection(collect(client.generateStream({ text: "x" })));
    expect(UnavailableError.isInstance(queued)).toBe(true);
    expect((queued as APIError).retryable).toBe(true);
    expect((queued as APIError).requestId).toMatch(/^[0-9a-f]{32}$/);

    server.injectAbort({ message: "The request queue is full.", statusCode: 503 });
    const queuedUnary = await rejection(client.generate({ text: "x" }));
    expect(UnavailableError.isInstance(queuedUnary)).toBe(true);

    server.injectAbort({ message: "Aborted by AbortReq.", statusCode: null, errType: null });
    const cancelled = await rejection(collect(client.generateStream({ text: "x" })));
    expect((cancelled as Error).name).toBe("AbortedError");
    expect((cancelled as APIError).retryable).toBe(false);

    server.injectAbort({ message: "slow down", statusCode: 429 });
    expect(ResourceExhaustedError.isInstance(await rejection(client.generate({ text: "x" })))).toBe(true);
  });

  it("reports health and model/server info", async () => {
    const { server, client } = await setup({ modelPath: "org/model-a", maxReqInputLen: 1000 });
    await client.health();
    await client.healthGenerate();
    expect(await client.modelInfo()).toMatchObject({ model_path: "org/model-a", is_generation: true });
    expect(await client.serverInfo()).toMatchObject({ max_req_input_len: 1000, version: "0.5.23" });
    server.healthy = false;
    const down = await rejection(client.health());
    expect(UnavailableError.isInstance(down)).toBe(true);
    expect((down as APIError).status).toBe(503);
  });

  it("needs a URL and says which variable provides it", () => {
    const saved = process.env.SGLANG_URL;
    delete process.env.SGLANG_URL;
    try {
      expect(() => new SglangClient()).toThrow(/SGLANG_URL/);
      expect(() => new SglangClient({ baseUrl: "not a url" })).toThrow(MicroturnError);
    } finally {
      if (saved !== undefined) process.env.SGLANG_URL = saved;
    }
  });
});

describe("SglangClient sessions", () => {
  it("opens with a client-chosen id, sends it as routing key, closes", async () => {
    const { server, client } = await setup({}, { routingKey: "ignored-for-sessions" });
    const id = await client.openSession({ capacityOfStrLen: 4096, streaming: true, timeoutS: 30 });
    expect(id).toMatch(/^[0-9a-f]{32}$/);
    expect(server.requests.at(-1)!.body).toEqual({ capacity_of_str_len: 4096, session_id: id, streaming: true, timeout: 30 });
    await collect(client.generateStream({ text: "hi", session_params: { id } }));
    await client.closeSession(id);
    expect(server.openSessionIds()).toEqual([]);
    for (const request of server.requests) expect(request.headers[SGLANG_ROUTING_HEADER.toLowerCase()]).toBe(id);
  });

  it("maps session failures: duplicate id, streaming disabled, unknown session", async () => {
    const { client } = await setup();
    await client.openSession({ capacityOfStrLen: 10, sessionId: "s1" });
    expect(FailedPreconditionError.isInstance(await rejection(client.openSession({ capacityOfStrLen: 10, sessionId: "s1" })))).toBe(true);
    const missing = await rejection(client.generate({ text: "x", session_params: { id: "nope" } }));
    expect(NotFoundError.isInstance(missing)).toBe(true);
    expect((missing as APIError).sessionId).toBe("nope");
    const missingStreamed = await rejection(collect(client.generateStream({ text: "x", session_params: { id: "nope" } })));
    expect(NotFoundError.isInstance(missingStreamed)).toBe(true);

    const { client: disabled } = await setup({ enableStreamingSession: false });
    const refused = await rejection(disabled.openSession({ capacityOfStrLen: 10, streaming: true }));
    expect(BadRequestError.isInstance(refused)).toBe(true);
    expect((refused as Error).message).toMatch(/--enable-streaming-session/);
  });

  it("passes non-streaming session params (rid, offset) and refuses them on streaming sessions", async () => {
    const { server, client } = await setup({ respond: () => "!" });
    const id = await client.openSession({ capacityOfStrLen: 100 });
    const first = await client.generate({ text: "ab", rid: "r1", session_params: { id } });
    expect(first.metaInfo.prompt_tokens).toBe(3);
    // Keep BOS + "a", drop the rest, append "c" (BOS of the appended input stripped).
    const second = await client.generate({ text: "c", rid: "r2", session_params: { id, rid: "r1", offset: 2 } });
    expect(second.metaInfo.prompt_tokens).toBe(3);
    expect(server.session(id)!.text).toBe("ac!");
    const stale = await rejection(client.generate({ text: "d", session_params: { id, rid: "r1" } }));
    expect(BadRequestError.isInstance(stale)).toBe(true);
    expect((stale as Error).message).toBe("Invalid request session id");

    const streaming = await client.openSession({ capacityOfStrLen: 100, streaming: true });
    const refused = await rejection(client.generate({ text: "x", session_params: { id: streaming, offset: 1 } }));
    expect(BadRequestError.isInstance(refused)).toBe(true);
    expect((refused as Error).message).toBe("Streaming sessions do not support offset.");
  });
});

describe("SglangClient against a peer sending huge bodies", () => {
  it("refuses a JSON answer over 16 MiB and cuts an error body to its first 64 KiB, without buffering the rest", async () => {
    const { createServer } = await import("node:http");
    let sentBytes = 0;
    const server = createServer((req, res) => {
      // Endless bodies: 1 MiB at a time for as long as the client reads.
      const piece = Buffer.alloc(1024 * 1024, req.url === "/model_info" ? "[" : "e");
      res.writeHead(req.url === "/model_info" ? 200 : 500, { "content-type": "application/json" });
      const write = () => {
        while (!res.destroyed && sentBytes < 1024 * 1024 * 1024 && res.write(piece)) sentBytes += piece.length;
      };
      res.on("drain", write);
      write();
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as import("node:net").AddressInfo;
    const client = new SglangClient({ baseUrl: `http://127.0.0.1:${port}` });
    try {
      const tooBig = await rejection(client.modelInfo());
      expect((tooBig as Error).name).toBe("ConnectionError");
      expect((tooBig as Error).message).toMatch(/over 16777216 bytes/);
      const failed = await rejection(client.generate({ text: "x" }));
      expect(APIError.isInstance(failed)).toBe(true);
      expect((failed as APIError).status).toBe(500);
      // Far less than the gigabyte the server would send.
      expect(sentBytes).toBeLessThan(256 * 1024 * 1024);
    } finally {
      await client.close();
      server.closeAllConnections();
      server.close();
    }
  });
});
