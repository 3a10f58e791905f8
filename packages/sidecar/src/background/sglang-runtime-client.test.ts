// The client of SGLang's native gRPC service (sglang.runtime.v1 ChatComplete)
// against an in-process server that answers as SGLang's does: chunks passed
// through one per message, then `finished`; failures as statuses.
import { status } from "@grpc/grpc-js";
import { TaskStatus, type BackgroundUpdate } from "@microturn/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { registerBuiltinTools } from "../tools/builtins.js";
import { ServerToolRegistry } from "../tools/registry.js";
import { loadConfig } from "../config.js";
import { createLogger } from "../logger.js";
import { createBackgroundClient } from "./from-config.js";
import { BackgroundManager } from "./manager.js";
import { SglangRuntimeClient } from "./sglang-runtime-client.js";
import { startSglangRuntimeTestServer, type SglangRuntimeTestServer } from "./testing/sglang-runtime-server.js";
import { collect, failure } from "./testing/deltas.js";

const user = [{ role: "user" as const, content: "hi" }];

describe("SglangRuntimeClient", () => {
  let server: SglangRuntimeTestServer;
  let client: SglangRuntimeClient;
  beforeAll(async () => {
    server = await startSglangRuntimeTestServer();
    client = new SglangRuntimeClient({ address: `grpc://${server.address}`, model: "bg", chunkTimeoutMs: 400 });
  });
  afterAll(async () => {
    await client.close();
    await server.close();
  });

  it("sends an OpenAI chat request as JSON and streams content, usage and the finish reason", async () => {
    server.setScript({ kind: "stream", content: ["Hel", "lo"], usage: { prompt_tokens: 5, completion_tokens: 2 } });
    const tools = [{ type: "function" as const, function: { name: "get_time", description: "time", parameters: { type: "object" } } }];
    const deltas = await collect(client.streamChat(user, { tools, maxTokens: 64, temperature: 0.2 }));
    expect(deltas).toEqual([
      { type: "content", text: "Hel" },
      { type: "content", text: "lo" },
      { type: "done", finishReason: "stop", usage: { promptTokens: 5, completionTokens: 2 } },
    ]);
    expect(server.requests.at(-1)).toMatchObject({ model: "bg", messages: user, stream: true, tools, max_tokens: 64, temperature: 0.2, rid: expect.stringMatching(/^microturn-bg-/) });
  });

  it("accumulates streamed tool calls, their later pieces with null ids and names as SGLang sends them", async () => {
    const piece = (id: string | null, name: string | null, args: string) => JSON.stringify({ choices: [{ index: 0, delta: { tool_calls: [{ index: 0, id, function: { name, arguments: args } }] }, finish_reason: null }] });
    server.setScript({ kind: "raw", events: [piece("call_9", "calculator", ""), piece(null, null, '{"expression": '), piece(null, null, '"2+2"}'), JSON.stringify({ choices: [{ index: 0, delta: {}, finish_reason: "tool_calls" }] })] });
    const deltas = await collect(client.streamChat(user));
    expect(deltas).toEqual([
      { type: "tool_call", id: "call_9", name: "calculator", argumentsJson: '{"expression": "2+2"}' },
      { type: "done", finishReason: "tool_calls" },
    ]);
  });

  it("maps statuses, error chunks, aborted answers and a stream cut short to typed errors", async () => {
    server.setScript({ kind: "status", code: status.INVALID_ARGUMENT, details: "messages: field required" });
    expect(await failure(client.streamChat(user))).toMatchObject({ code: "invalid_argument", message: expect.stringContaining("messages: field required") });
    server.setScript({ kind: "status", code: status.UNAVAILABLE, details: "gRPC server shutting down" });
    expect((await failure(client.streamChat(user))).code).toBe("unavailable");
    server.setScript({ kind: "raw", events: [JSON.stringify({ error: { message: "out of memory" } })] });
    expect(await failure(client.streamChat(user))).toMatchObject({ code: "bad_response", message: expect.stringContaining("out of memory") });
    server.setScript({ kind: "raw", events: [JSON.stringify({ choices: [{ index: 0, delta: {}, finish_reason: "abort" }] })] });
    expect((await failure(client.streamChat(user))).code).toBe("unavailable");
  });

  it("times out a server that stops sending, and cancels the call on abort", async () => {
    server.setScript({ kind: "hang" });
    expect((await failure(client.streamChat(user))).code).toBe("timeout");
    const controller = new AbortController();
    const stream = client.streamChat(user, { signal: controller.signal });
    setTimeout(() => controller.abort(), 50);
    const before = server.cancelled;
    expect((await failure(stream)).code).toBe("aborted");
    await expect.poll(() => server.cancelled).toBeGreaterThan(before);
  });

  it("is what --background sglang-grpc builds: no tokenizer to fetch, the server renders the chat", async () => {
    const built = await createBackgroundClient(loadConfig(["--background", "sglang-grpc", "--background-url", `grpc://${server.address}`, "--background-model", "bg2"], {}));
    expect(built).toBeInstanceOf(SglangRuntimeClient);
    server.setScript({ kind: "stream", content: ["fine"] });
    expect((await collect(built!.streamChat(user)))[0]).toEqual({ type: "content", text: "fine" });
    expect(server.requests.at(-1)?.model).toBe("bg2");
    await built!.close();
  });

  it("at start: refuses a port that serves another service, with the client that fits it; a server not up yet only warns", async () => {
    server.setHealth("unimplemented");
    const config = loadConfig(["--background", "sglang-grpc", "--background-url", server.address], {});
    await expect(createBackgroundClient(config)).rejects.toThrow(/does not serve SGLang's native gRPC service .* use --background sglang-smg-grpc/);
    server.setHealth("healthy");
    const warnings: string[] = [];
    const logger = { ...createLogger("silent"), warn: (message: string) => warnings.push(message) };
    const later = await createBackgroundClient(loadConfig(["--background", "sglang-grpc", "--background-url", "127.0.0.1:1"], {}), undefined, logger);
    expect(later).toBeInstanceOf(SglangRuntimeClient);
    expect(warnings).toEqual(["background model not reachable at start; tasks fail until it is"]);
    await later!.close();
  });

  it("ends an answer at a [DONE] chunk, were the server to send one", async () => {
    server.setScript({ kind: "raw", events: [JSON.stringify({ choices: [{ index: 0, delta: { content: "ok" }, finish_reason: null }] }), "[DONE]"] });
    expect(await collect(client.streamChat(user))).toEqual([{ type: "content", text: "ok" }, { type: "done", finishReason: "stop" }]);
  });

  it("reports a server that is down as unavailable", async () => {
    const down = new SglangRuntimeClient({ address: "127.0.0.1:1", deadlineMs: 2000 });
    expect((await failure(down.streamChat(user))).code).toBe("unavailable");
    await down.close();
  });

  it("drives a BackgroundManager task with a server-side tool round", async () => {
    const answers = [
      { kind: "stream" as const, toolCalls: [{ id: "call_1", name: "calculator", arguments: '{"expression": "17*23"}' }] },
      { kind: "stream" as const, content: ["It is 391."] },
    ];
    // Each round of the task gets the next scripted answer: a tool call, then the reply.
    let round = 0;
    const manager = new BackgroundManager({
      client: {
        streamChat: (messages, options) => {
          server.setScript(answers[Math.min(round++, 1)]!);
          return client.streamChat(messages, options);
        },
        close: async () => undefined,
      },
      tools: registerBuiltinTools(new ServerToolRegistry()),
    });
    const updates: BackgroundUpdate[] = [];
    manager.on("update", (u) => updates.push(u));
    const id = manager.start({ task: "What is 17*23?", fromModel: true, conversation: [{ role: "user", text: "17 times 23?", startMs: 1_000 }] });
    await expect.poll(() => updates.find((u) => u.taskId === id && u.status === TaskStatus.TASK_STATUS_DONE)?.content, { timeout: 5_000 }).toBe("It is 391.");
    const second = server.requests.at(-1) as { messages: Array<{ role: string; tool_call_id?: string; content?: string }> };
    expect(second.messages.at(-1)).toMatchObject({ role: "tool", tool_call_id: "call_1", content: expect.stringContaining("391") });
    manager.close();
  });
});
