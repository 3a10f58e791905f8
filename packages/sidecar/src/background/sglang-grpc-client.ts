// Background model over SGLang's native gRPC service (SglangScheduler, served
// with --grpc-port). That service takes token ids and returns token ids, so
// this client renders the chat template and tokenizes on our side (ChatTokenizer),
// decodes output incrementally, and reads tool calls from the text with the
// same Hermes-style parser as the interaction model's output.
import { createHash, randomUUID } from "node:crypto";
import { credentials as grpcCredentials, type ChannelCredentials, type ServiceError } from "@grpc/grpc-js";
import { GenerateRequest, SglangSchedulerClient, type GenerateResponse } from "../gen/sglang/sglang_scheduler.js";
import { ToolCallParser } from "../tools/tool-call-parser.js";
import { HfChatTokenizer, type ChatTokenizer } from "./chat-tokenizer.js";
import type { BackgroundClient, BackgroundDelta, ChatMessage, StreamChatOptions } from "./client.js";
import { BackgroundError } from "./errors.js";
import { backgroundErrorFromGrpc } from "./grpc-errors.js";
import { readZipEntries } from "./zip-reader.js";

export interface SglangGrpcChatClientOptions {
  /** host:port of SGLang's gRPC port, e.g. 127.0.0.1:30001. */
  address: string;
  tokenizer: ChatTokenizer;
  /** Insecure by default (a sidecar next to its server). */
  credentials?: ChannelCredentials;
  /** Output budget when the call names none. Default 1024. */
  maxNewTokens?: number;
  /** Sampling temperature when the call names none. Default 0.7. */
  temperature?: number;
  /** Deadline of one whole generation, ms. Default 300000. */
  deadlineMs?: number;
}

/**
 * Fetches the served model's tokenizer files over GetTokenizer (a ZIP bundle
 * streamed in chunks, SHA-256 on the last) and builds the chat tokenizer.
 */
export async function fetchSglangTokenizer(
  address: string,
  options: { credentials?: ChannelCredentials; deadlineMs?: number; signal?: AbortSignal } = {},
): Promise<HfChatTokenizer> {
  const what = `SGLang gRPC ${address} GetTokenizer`;
  const client = new SglangSchedulerClient(address, options.credentials ?? grpcCredentials.createInsecure());
  const call = client.getTokenizer({}, { deadline: Date.now() + (options.deadlineMs ?? 60_000) });
  const onAbort = () => call.cancel();
  options.signal?.addEventListener("abort", onAbort, { once: true });
  const parts: Buffer[] = [];
  let sha256 = "";
  try {
    for await (const chunk of call as AsyncIterable<{ data: Buffer; sha256: string }>) {
      parts.push(chunk.data);
      if (chunk.sha256 !== "") sha256 = chunk.sha256;
    }
  } catch (err) {
    throw backgroundErrorFromGrpc(err as ServiceError, options.signal, what);
  } finally {
    options.signal?.removeEventListener("abort", onAbort);
    client.close();
  }
  const archive = Buffer.concat(parts);
  if (archive.length === 0) throw new BackgroundError("bad_response", `${what} sent no data`);
  const actual = createHash("sha256").update(archive).digest("hex");
  if (sha256 !== "" && sha256.toLowerCase() !== actual) {
    throw new BackgroundError("bad_response", `${what}: archive SHA-256 ${actual} does not match the announced ${sha256}`);
  }
  return HfChatTokenizer.fromFiles(readZipEntries(archive), `${what} bundle`);
}

export class SglangGrpcChatClient implements BackgroundClient {
  /** Connects with the tokenizer the server itself serves (GetTokenizer). */
  static async connect(options: Omit<SglangGrpcChatClientOptions, "tokenizer"> & { signal?: AbortSignal }): Promise<SglangGrpcChatClient> {
    const tokenizer = await fetchSglangTokenizer(options.address, {
      ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
    return new SglangGrpcChatClient({ ...options, tokenizer });
  }

  private readonly client: SglangSchedulerClient;
  private readonly tokenizer: ChatTokenizer;
  private readonly maxNewTokens: number;
  private readonly temperature: number;
  private readonly deadlineMs: number;
  private readonly address: string;

  constructor(options: SglangGrpcChatClientOptions) {
    this.address = options.address;
    this.client = new SglangSchedulerClient(options.address, options.credentials ?? grpcCredentials.createInsecure());
    this.tokenizer = options.tokenizer;
    this.maxNewTokens = options.maxNewTokens ?? 1024;
    this.temperature = options.temperature ?? 0.7;
    this.deadlineMs = options.deadlineMs ?? 300_000;
  }

  async *streamChat(messages: ChatMessage[], options: StreamChatOptions = {}): AsyncGenerator<BackgroundDelta> {
    const { signal } = options;
    const what = `SGLang gRPC ${this.address}`;
    if (signal?.aborted === true) throw new BackgroundError("aborted", `${what}: aborted before the request`);
    const prompt = this.tokenizer.encodeChat(messages, options.tools);
    const requestId = `microturn-bg-${randomUUID()}`;
    // Proto3 zeros are not SGLang's defaults (top_k 0, repetition_penalty 0): every field is set.
    const request = GenerateRequest.fromPartial({
      requestId,
      tokenized: { originalText: prompt.text, inputIds: prompt.inputIds },
      samplingParams: {
        temperature: options.temperature ?? this.temperature,
        topP: 1,
        topK: -1,
        minP: 0,
        frequencyPenalty: 0,
        presencePenalty: 0,
        repetitionPenalty: 1,
        maxNewTokens: options.maxTokens ?? this.maxNewTokens,
        skipSpecialTokens: true,
        spacesBetweenSpecialTokens: true,
        n: 1,
      },
      stream: true,
    });
    const call = this.client.generate(request, { deadline: Date.now() + this.deadlineMs });
    const onAbort = () => call.cancel();
    signal?.addEventListener("abort", onAbort, { once: true });

    const decoder = this.tokenizer.createDecoder();
    const parser = new ToolCallParser();
    const calls: BackgroundDelta[] = [];
    const textDeltas = function* (text: string): Generator<BackgroundDelta> {
      const parsed = parser.push(text);
      if (parsed.text !== "") yield { type: "content", text: parsed.text };
      // Ids unique across rounds of one conversation: the next round pairs results with them.
      for (const c of parsed.calls) calls.push({ type: "tool_call", id: `call_${requestId.slice(-8)}_${calls.length}`, name: c.name, argumentsJson: c.argumentsJson });
      // A malformed call stays visible as text: the model's words are not dropped silently.
      for (const e of parsed.errors) yield { type: "content", text: `[unusable tool call: ${e.message}]` };
    };
    let finishReason: string | undefined;
    let usage: { promptTokens: number; completionTokens: number } | undefined;
    try {
      for await (const message of call as AsyncIterable<GenerateResponse>) {
        const response = message.response;
        if (response === undefined) continue;
        if (response.$case === "chunk") {
          yield* textDeltas(decoder.push(response.value.tokenIds));
        } else {
          // Streaming chunks already carried every token; the final output_ids repeat them.
          finishReason = response.value.finishReason || "stop";
          usage = { promptTokens: response.value.promptTokens, completionTokens: response.value.completionTokens };
        }
      }
    } catch (err) {
      throw backgroundErrorFromGrpc(err as ServiceError, signal, what);
    } finally {
      signal?.removeEventListener("abort", onAbort);
      call.cancel();
    }
    if (finishReason === undefined) throw new BackgroundError("unavailable", `${what} ended the stream without a completion`);
    if (finishReason === "abort") throw new BackgroundError("unavailable", `${what} aborted the request`);
    yield* textDeltas(decoder.flush());
    const tail = parser.flush();
    if (tail.text !== "") yield { type: "content", text: tail.text };
    for (const e of tail.errors) yield { type: "content", text: `[unusable tool call: ${e.message}]` };
    yield* calls;
    yield { type: "done", finishReason: calls.length > 0 ? "tool_calls" : finishReason, usage };
  }

  async close(): Promise<void> {
    this.client.close();
  }
}
