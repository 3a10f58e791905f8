import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BackgroundError } from "./errors.js";
import { MAX_ANSWER_CHARS } from "./chat-chunks.js";
import { OpenAiChatClient } from "./openai-client.js";
import { startOpenAiTestServer, type OpenAiTestServer } from "./testing/openai-server.js";
import { collect, failure } from "./testing/deltas.js";

const user = [{ role: "user" as const, content: "hello" }];

describe("OpenAiChatClient", () => {
  let server: OpenAiTestServer;
  let client: OpenAiChatClient;
  beforeAll(async () => {
    server = await startOpenAiTestServer();
    client = new OpenAiChatClient({ baseUrl: server.url, apiKey: "sk-test", model: "bg-model", bodyTimeoutMs: 400, headersTimeoutMs: 400 });
  });
  afterAll(async () => {
    await client.close();
    await server.close();
  });

  it("streams content deltas, usage and the finish reason", async () => {
    server.setScript({ kind: "stream", content: ["Hel", "lo", " there"], usage: { prompt_tokens: 7, completion_tokens: 3 } });
    const deltas = await collect(client.streamChat(user, { temperature: 0.2, maxTokens: 64 }));
    expect(deltas).toEqual([
      { type: "content", text: "Hel" },
      { type: "content", text: "lo" },
      { type: "content", text: " there" },
      { type: "done", finishReason: "stop", usage: { promptTokens: 7, completionTokens: 3 } },
    ]);
    const request = server.requests.at(-1);
    expect(request?.path).toBe("/v1/chat/completions");
    expect(request?.headers.authorization).toBe("Bearer sk-test");
    expect(request?.body).toMatchObject({ model: "bg-model", stream: true, temperature: 0.2, max_tokens: 64, messages: user });
  });

  it("accumulates streamed tool-call arguments by index", async () => {
    server.setScript({
      kind: "stream",
      toolCalls: [
        { id: "call_a", name: "calculator", arguments: '{"expression": "2 * (3 + 4)"}' },
        { id: "call_b", name: "get_time", arguments: '{"timezone": "Europe/Lisbon"}' },
      ],
      argumentPieceChars: 3,
    });
    const tools = [{ type: "function" as const, function: { name: "calculator", description: "math", parameters: { type: "object" } } }];
    const deltas = await collect(client.streamChat(user, { tools }));
    expect(deltas).toEqual([
      { type: "tool_call", id: "call_a", name: "calculator", argumentsJson: '{"expression": "2 * (3 + 4)"}' },
      { type: "tool_call", id: "call_b", name: "get_time", argumentsJson: '{"timezone": "Europe/Lisbon"}' },
      { type: "done", finishReason: "tool_calls" },
    ]);
    expect(server.requests.at(-1)?.body.tools).toEqual(tools);
  });

  it("reuses one keep-alive connection for sequential requests", async () => {
    server.setScript({ kind: "stream", content: ["a"] });
    await collect(client.streamChat(user));
    const before = server.connectionCount;
    for (let i = 0; i < 3; i++) await collect(client.streamChat(user));
    expect(server.connectionCount).toBe(before);
  });

  it("turns HTTP errors into http_<status> errors with the server's message", async () => {
    server.setScript({ kind: "status", status: 503, message: "model is loading" });
    const err = await failure(client.streamChat(user));
    expect(err.code).toBe("http_503");
    expect(err.status).toBe(503);
    expect(err.retryable).toBe(true);
    expect(err.message).toContain("model is loading");
    server.setScript({ kind: "status", status: 400, message: "bad messages" });
    const bad = await failure(client.streamChat(user));
    expect(bad.code).toBe("http_400");
    expect(bad.retryable).toBe(false);
  });

  it("reports a dropped connection as unavailable", async () => {
    server.setScript({ kind: "drop", content: ["partial"] });
    const seen: string[] = [];
    const err = await failure(
      (async function* () {
        for await (const d of client.streamChat(user)) {
          if (d.type === "content") seen.push(d.text);
          yield d;
        }
      })(),
    );
    expect(seen).toEqual(["partial"]);
    expect(err.code).toBe("unavailable");
  });

  it("reports garbage events as bad_response", async () => {
    server.setScript({ kind: "raw", events: ["{not json"] });
    expect((await failure(client.streamChat(user))).code).toBe("bad_response");
  });

  it("times out a server that never answers", async () => {
    server.setScript({ kind: "hang" });
    const err = await failure(client.streamChat(user));
    expect(err.code).toBe("timeout");
    expect(err.retryable).toBe(true);
  });

  it("times out a stream that stalls between chunks", async () => {
    server.setScript({ kind: "stream", content: ["a", "b"], delayMs: 700 });
    expect((await failure(client.streamChat(user))).code).toBe("timeout");
  });

  it("aborts an in-flight request through the signal", async () => {
    server.setScript({ kind: "stream", content: ["a", "b", "c"], delayMs: 100 });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 150);
    const err = await failure(client.streamChat(user, { signal: controller.signal }));
    expect(err.code).toBe("aborted");
  });

  it("reports a server that is down as unavailable", async () => {
    const down = await startOpenAiTestServer();
    const url = down.url;
    await down.close();
    const orphan = new OpenAiChatClient({ baseUrl: url });
    try {
      const err = await failure(orphan.streamChat(user));
      expect(err.code).toBe("unavailable");
      expect(err.message).toContain("ECONNREFUSED");
    } finally {
      await orphan.close();
    }
  });

  it("accepts a base URL that already ends in /v1 and rejects one that is not a URL", async () => {
    server.setScript({ kind: "stream", content: ["x"] });
    const prefixed = new OpenAiChatClient({ baseUrl: `${server.url}/v1/` });
    try {
      await collect(prefixed.streamChat(user));
      expect(server.requests.at(-1)?.path).toBe("/v1/chat/completions");
    } finally {
      await prefixed.close();
    }
    expect(() => new OpenAiChatClient({ baseUrl: "not a url" })).toThrow(BackgroundError);
  });

  it("ends at [DONE] even when the server keeps the body open", async () => {
    server.setScript({ kind: "raw", events: ['{"choices":[{"delta":{"content":"hi"}}]}', "[DONE]"], keepOpen: true });
    const started = Date.now();
    const deltas = await collect(client.streamChat(user));
    expect(deltas).toEqual([{ type: "content", text: "hi" }, { type: "done", finishReason: "stop" }]);
    expect(Date.now() - started).toBeLessThan(400);
  });

  it("ends a finished answer when the server keeps the body open without [DONE] (it timed out and the answer was lost)", async () => {
    const finish = '{"choices":[{"delta":{},"finish_reason":"stop"}]}';
    // Finish reason, then usage: whole at once.
    server.setScript({ kind: "raw", events: ['{"choices":[{"delta":{"content":"hi"}}]}', finish, '{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}'], keepOpen: true });
    let started = Date.now();
    expect(await collect(client.streamChat(user))).toEqual([
      { type: "content", text: "hi" },
      { type: "done", finishReason: "stop", usage: { promptTokens: 3, completionTokens: 1 } },
    ]);
    expect(Date.now() - started).toBeLessThan(400);
    // No usage (a server without include_usage): heartbeats do not hold it; the stall timer ends it, whole.
    server.setScript({ kind: "raw", events: ['{"choices":[{"delta":{"content":"hi"}}]}', finish], keepOpen: true });
    started = Date.now();
    expect(await collect(client.streamChat(user))).toEqual([
      { type: "content", text: "hi" },
      { type: "done", finishReason: "stop" },
    ]);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it("refuses an event that is not an object as a bad response", async () => {
    server.setScript({ kind: "raw", events: ["null", "[DONE]"] });
    expect((await failure(client.streamChat(user))).code).toBe("bad_response");
    server.setScript({ kind: "raw", events: ['{"choices":[null]}', "[DONE]"] });
    expect(await collect(client.streamChat(user))).toEqual([{ type: "done", finishReason: "stop" }]);
  });

  it("keeps parallel tool calls apart when the server sends ids but no index", async () => {
    const piece = (id: string | undefined, name: string | undefined, args: string) =>
      JSON.stringify({ choices: [{ delta: { tool_calls: [{ ...(id ? { id } : {}), function: { ...(name ? { name } : {}), arguments: args } }] } }] });
    server.setScript({ kind: "raw", events: [piece("call_1", "calculator", '{"expression":'), piece(undefined, undefined, '"1+1"}'), piece("call_2", "get_time", "{}"), "[DONE]"] });
    const deltas = await collect(client.streamChat(user));
    expect(deltas.filter((d) => d.type === "tool_call")).toEqual([
      { type: "tool_call", id: "call_1", name: "calculator", argumentsJson: '{"expression":"1+1"}' },
      { type: "tool_call", id: "call_2", name: "get_time", argumentsJson: "{}" },
    ]);
  });

  it("takes a call's id and name from its first piece when later pieces carry them as null (SGLang's stream)", async () => {
    const piece = (id: string | null, name: string | null, args: string | null, index = 0) =>
      JSON.stringify({ choices: [{ delta: { tool_calls: [{ index, id, type: id ? "function" : null, function: { name, arguments: args } }] }, finish_reason: null }], error: null });
    server.setScript({
      kind: "raw",
      events: [piece("call_abc", "get_time", ""), piece(null, null, '{"timezone":'), piece(null, null, ' "UTC"}'), piece(null, null, null), "[DONE]"],
    });
    const deltas = await collect(client.streamChat(user));
    expect(deltas.filter((d) => d.type === "tool_call")).toEqual([{ type: "tool_call", id: "call_abc", name: "get_time", argumentsJson: '{"timezone": "UTC"}' }]);
  });

  it("gives calls without an id ids unique to the answer, so rounds do not repeat them", async () => {
    const event = JSON.stringify({ choices: [{ delta: { tool_calls: [{ index: 0, function: { name: "get_time", arguments: "{}" } }] } }] });
    server.setScript({ kind: "raw", events: [event, "[DONE]"] });
    const [first, second] = [await collect(client.streamChat(user)), await collect(client.streamChat(user))];
    const ids = [first, second].map((deltas) => deltas.find((d) => d.type === "tool_call")!);
    expect(ids[0]).toMatchObject({ name: "get_time", id: expect.stringMatching(/^call_[0-9a-f]+_0$/) });
    expect((ids[0] as { id: string }).id).not.toBe((ids[1] as { id: string }).id);
  });

  it("reports an answer the server aborted as unavailable, not done", async () => {
    server.setScript({ kind: "raw", events: ['{"choices":[{"delta":{"content":"It is noon, but"}}]}', '{"choices":[{"delta":{},"finish_reason":"abort"}]}', "[DONE]"] });
    const error = await failure(client.streamChat(user));
    expect(error.code).toBe("unavailable");
    expect(error.message).toMatch(/aborted the request/);
  });

  it("reads error: null as no error, and a JSON answer to a streamed request as a bad response", async () => {
    server.setScript({ kind: "raw", events: ['{"choices":[{"delta":{"content":"ok"}}],"error":null}', "[DONE]"] });
    expect((await collect(client.streamChat(user)))[0]).toEqual({ type: "content", text: "ok" });
    server.setScript({ kind: "status", status: 200, message: "not streaming" });
    const error = await failure(client.streamChat(user));
    expect(error.code).toBe("bad_response");
    expect(error.retryable).toBe(false);
    expect(error.message).toMatch(/answered with JSON, not an event stream/);
  });

  it("cuts an answer past the cap and finishes it as length", async () => {
    server.setScript({ kind: "stream", content: Array.from({ length: 5 }, () => "z".repeat(MAX_ANSWER_CHARS / 4)) });
    const deltas = await collect(client.streamChat(user));
    const text = deltas.map((d) => (d.type === "content" ? d.text : "")).join("");
    expect(text.length).toBe(MAX_ANSWER_CHARS);
    expect(deltas.at(-1)).toEqual({ type: "done", finishReason: "length" });
  });
});
