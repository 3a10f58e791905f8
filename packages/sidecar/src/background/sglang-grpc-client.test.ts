import { status } from "@grpc/grpc-js";
import { TaskStatus, type BackgroundUpdate } from "@microturn/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { registerBuiltinTools } from "../tools/builtins.js";
import { ServerToolRegistry } from "../tools/registry.js";
import type { BackgroundDelta } from "./client.js";
import { BackgroundError } from "./errors.js";
import { BackgroundManager } from "./manager.js";
import { SglangGrpcChatClient, fetchSglangTokenizer } from "./sglang-grpc-client.js";
import { startSglangGrpcTestServer, type SglangGrpcTestServer } from "./testing/sglang-grpc-server.js";
import { tinyChatTokenizer, tinyTokenizerFiles } from "./testing/tiny-tokenizer.js";
import { writeZip } from "./testing/zip-writer.js";
import { readZipEntries } from "./zip-reader.js";
import { collect, failure } from "./testing/deltas.js";

const tokenizer = tinyChatTokenizer();
const idsOf = (text: string) => (tokenizer as unknown as { tokenizer: { encode(t: string, o: object): { ids: number[] } } }).tokenizer.encode(text, { add_special_tokens: false }).ids;

const text = (deltas: BackgroundDelta[]) => deltas.filter((d) => d.type === "content").map((d) => (d as { text: string }).text).join("");

describe("SglangGrpcChatClient", () => {
  let server: SglangGrpcTestServer;
  let client: SglangGrpcChatClient;
  beforeAll(async () => {
    server = await startSglangGrpcTestServer({ kind: "reply", replyIds: idsOf("ok") });
    client = new SglangGrpcChatClient({ address: server.address, tokenizer, maxNewTokens: 256, temperature: 0.3 });
  });
  afterAll(async () => {
    await client.close();
    await server.close();
  });

  it("sends the chat as token ids with explicit sampling parameters and streams decoded text", async () => {
    const replyIds = [...idsOf("Lisbon in May: café, Alfama, 東京? no."), 258];
    server.setScript({ kind: "reply", replyIds, idsPerChunk: 3 });
    const deltas = await collect(client.streamChat([{ role: "user", content: "Plan Lisbon" }]));
    expect(text(deltas)).toBe("Lisbon in May: café, Alfama, 東京? no.");
    expect(deltas.at(-1)).toMatchObject({ type: "done", finishReason: "stop", usage: { completionTokens: replyIds.length } });
    const request = server.requests.at(-1);
    expect(request?.stream).toBe(true);
    expect(request?.tokenized?.originalText).toBe("<|im_start|>user\nPlan Lisbon<|im_end|>\n<|im_start|>assistant\n");
    expect(request?.tokenized?.inputIds).toEqual(tokenizer.encodeChat([{ role: "user", content: "Plan Lisbon" }]).inputIds);
    expect(request?.samplingParams).toMatchObject({ maxNewTokens: 256, topP: 1, topK: -1, repetitionPenalty: 1, n: 1 });
    expect(request?.samplingParams?.temperature).toBeCloseTo(0.3, 5);
  });

  it("reads Hermes tool calls out of the generated text", async () => {
    server.setScript({ kind: "reply", replyIds: idsOf('Checking. <tool_call>{"name": "calculator", "arguments": {"expression": "17*23"}}</tool_call>'), idsPerChunk: 1 });
    const tools = [{ type: "function" as const, function: { name: "calculator", description: "math", parameters: { type: "object" } } }];
    const deltas = await collect(client.streamChat([{ role: "user", content: "17*23" }], { tools }));
    expect(text(deltas)).toBe("Checking. ");
    expect(deltas.filter((d) => d.type !== "content")).toEqual([
      { type: "tool_call", id: expect.stringMatching(/^call_[0-9a-f-]{8}_0$/), name: "calculator", argumentsJson: '{"expression":"17*23"}' },
      { type: "done", finishReason: "tool_calls", usage: expect.any(Object) },
    ]);
    expect(server.requests.at(-1)?.tokenized?.originalText).toContain("# Tools");
  });

  it("maps gRPC failures to typed errors", async () => {
    server.setScript({ kind: "status", code: status.RESOURCE_EXHAUSTED, details: "KV cache full" });
    const full = await failure(client.streamChat([{ role: "user", content: "x" }]));
    expect(full.code).toBe("resource_exhausted");
    expect(full.message).toContain("KV cache full");
    server.setScript({ kind: "status", code: status.INTERNAL, details: "scheduler crashed" });
    expect((await failure(client.streamChat([{ role: "user", content: "x" }]))).code).toBe("bad_response");
    server.setScript({ kind: "reply", replyIds: idsOf("par"), finishReason: "abort" });
    expect((await failure(client.streamChat([{ role: "user", content: "x" }]))).code).toBe("unavailable");
  });

  it("cancels the call on abort", async () => {
    server.setScript({ kind: "reply", replyIds: idsOf("a long answer that takes a while"), idsPerChunk: 1, delayMs: 30 });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const err = await failure(client.streamChat([{ role: "user", content: "x" }], { signal: controller.signal }));
    expect(err.code).toBe("aborted");
    await new Promise((r) => setTimeout(r, 50));
    expect(server.cancelled).toContain(server.requests.at(-1)?.requestId);
  });

  it("reports a server that is down as unavailable", async () => {
    const down = await startSglangGrpcTestServer({ kind: "hang" });
    const address = down.address;
    await down.close();
    const orphan = new SglangGrpcChatClient({ address, tokenizer, deadlineMs: 3_000 });
    try {
      expect((await failure(orphan.streamChat([{ role: "user", content: "x" }]))).code).toBe("unavailable");
    } finally {
      await orphan.close();
    }
  });

  it("drives a BackgroundManager task with a server-side tool round over gRPC", async () => {
    server.setScript((request) =>
      request.tokenized?.originalText.includes("<tool_response>")
        ? { kind: "reply", replyIds: idsOf("It is 391.") }
        : { kind: "reply", replyIds: idsOf('<tool_call>{"name": "calculator", "arguments": {"expression": "17*23"}}</tool_call>') },
    );
    const manager = new BackgroundManager({ client, tools: registerBuiltinTools(new ServerToolRegistry()) });
    const updates: BackgroundUpdate[] = [];
    manager.on("update", (u) => updates.push(u));
    const id = manager.start({ task: "What is 17*23?", fromModel: true, conversation: [{ role: "user", text: "17 times 23?", startMs: 1_000 }] });
    await expect.poll(() => updates.find((u) => u.taskId === id && u.status === TaskStatus.TASK_STATUS_DONE)?.content, { timeout: 5_000 }).toBe("It is 391.");
    expect(server.requests.at(-1)?.tokenized?.originalText).toContain('<tool_response>{"expression":"17*23","result":391}</tool_response>');
    manager.close();
  });
});

describe("tokenizer from the server (GetTokenizer)", () => {
  const { tokenizerJson, tokenizerConfig } = tinyTokenizerFiles();
  const archive = writeZip({
    "tokenizer.json": JSON.stringify(tokenizerJson),
    "tokenizer_config.json": JSON.stringify(tokenizerConfig),
    "config.json": JSON.stringify({ architectures: ["Qwen3ForCausalLM"] }),
  });

  it("connects with the served tokenizer, streamed in chunks and checked by SHA-256", async () => {
    const server = await startSglangGrpcTestServer({ kind: "reply", replyIds: idsOf("from the bundle") }, { tokenizerArchive: archive, tokenizerChunkBytes: 1000 });
    const client = await SglangGrpcChatClient.connect({ address: server.address });
    try {
      expect(text(await collect(client.streamChat([{ role: "user", content: "hi" }])))).toBe("from the bundle");
      expect(server.requests.at(-1)?.tokenized?.inputIds).toEqual(tokenizer.encodeChat([{ role: "user", content: "hi" }]).inputIds);
    } finally {
      await client.close();
      await server.close();
    }
  });

  it("refuses a bundle whose SHA-256 does not match, and a server without a tokenizer", async () => {
    const tampered = await startSglangGrpcTestServer({ kind: "hang" }, { tokenizerArchive: archive, tokenizerSha256: "0".repeat(64) });
    const bare = await startSglangGrpcTestServer({ kind: "hang" });
    try {
      await expect(fetchSglangTokenizer(tampered.address)).rejects.toThrow(/does not match/);
      await expect(fetchSglangTokenizer(bare.address)).rejects.toThrow(/FAILED_PRECONDITION|not configured/);
    } finally {
      await tampered.close();
      await bare.close();
    }
  });

  it("reads deflated entries and refuses damaged archives with typed errors", () => {
    const entries = readZipEntries(writeZip({ "a.txt": "alpha", "dir/b.json": '{"b": 2}' }));
    expect([...entries.keys()]).toEqual(["a.txt", "dir/b.json"]);
    expect(entries.get("a.txt")?.toString()).toBe("alpha");
    expect(() => readZipEntries(Buffer.from("not a zip at all, just some bytes"))).toThrow(BackgroundError);
    const corrupt = writeZip({ "a.txt": "alpha alpha alpha" });
    corrupt[37] = (corrupt[37] as number) ^ 0xff; // inside the deflated data (30-byte header + "a.txt")
    expect(() => readZipEntries(corrupt)).toThrow(/tokenizer archive/);
  });
});
