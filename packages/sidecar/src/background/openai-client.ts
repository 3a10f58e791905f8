// Background model over any OpenAI-compatible chat-completions endpoint
// (SGLang, vLLM, llama.cpp server, hosted APIs): streamed SSE over a
// keep-alive undici Pool.
import { randomBytes } from "node:crypto";
import { Pool, errors as undiciErrors, type Dispatcher } from "undici";
import type { BackgroundClient, BackgroundDelta, ChatMessage, ChatUsage, StreamChatOptions } from "./client.js";
import { BackgroundError } from "./errors.js";
import { readCapped, readSseData, SseLimitError } from "@microturn/sdk";

export interface OpenAiChatClientOptions {
  /** Server origin, optionally with a path prefix; `/v1/chat/completions` is appended (once). */
  baseUrl: string;
  /** Sent as `Authorization: Bearer <key>` when set. */
  apiKey?: string;
  /** Default model name; SGLang accepts any name for its one served model. Default "default". */
  model?: string;
  /** Pooled keep-alive connections. Default 8. */
  connections?: number;
  /** Deadline for the response headers, ms. Default 30000. */
  headersTimeoutMs?: number;
  /** Deadline between two body chunks, ms (a stalled stream). Default 60000. */
  bodyTimeoutMs?: number;
  /** Extra headers on every request (routing keys, org ids). */
  headers?: Record<string, string>;
}

interface ToolCallDraft {
  id: string;
  name: string;
  arguments: string;
}

/** One `data:` payload of a streamed chat completion, as far as this client reads it. */
interface ChunkJson {
  choices?: Array<{
    delta?: {
      content?: string | null;
      // Servers that keep unset fields write them as null (SGLang sends follow-up pieces with id and name null).
      tool_calls?: Array<{ index?: number | null; id?: string | null; function?: { name?: string | null; arguments?: string | null } | null }>;
    };
    finish_reason?: string | null;
  }>;
  usage?: { prompt_tokens?: number; completion_tokens?: number } | null;
  error?: { message?: string } | null;
}

function joinPath(prefix: string, path: string): string {
  const trimmed = prefix.replace(/\/+$/, "");
  return trimmed.endsWith("/v1") ? `${trimmed}${path.slice(3)}` : `${trimmed}${path}`;
}

/** Longest answer text kept from one task, characters; what the interaction model can weave in is far less. */
export const MAX_ANSWER_CHARS = 200_000;
/** Longest single streamed event, and longest tool-call arguments, characters. */
const MAX_EVENT_CHARS = 1_000_000;

function mapTransportError(err: unknown, signal: AbortSignal | undefined, what: string): BackgroundError {
  if (BackgroundError.isInstance(err)) return err;
  if (err instanceof SseLimitError) return new BackgroundError("bad_response", `${what}: ${err.message}`, { cause: err });
  if (signal?.aborted === true) return new BackgroundError("aborted", `${what}: aborted`, { cause: err });
  const code = (err as { code?: string } | null)?.code;
  if (err instanceof undiciErrors.HeadersTimeoutError || err instanceof undiciErrors.BodyTimeoutError || code === "UND_ERR_CONNECT_TIMEOUT") {
    return new BackgroundError("timeout", `${what}: no answer in time (${code ?? "timeout"})`, { cause: err });
  }
  const message = err instanceof Error ? err.message : String(err);
  return new BackgroundError("unavailable", `${what}: ${code ?? "connection failed"}: ${message}`, { cause: err });
}

/** Enough of an error body to name the problem; the rest is not read. */
const MAX_ERROR_BODY_BYTES = 4096;

async function readErrorBody(body: Dispatcher.ResponseData["body"]): Promise<string> {
  const { text } = await readCapped(body, MAX_ERROR_BODY_BYTES);
  try {
    const parsed = JSON.parse(text) as { error?: { message?: string } | string; message?: string };
    if (typeof parsed.error === "string") return parsed.error;
    return parsed.error?.message ?? parsed.message ?? text.slice(0, 500);
  } catch {
    return text.slice(0, 500);
  }
}

export class OpenAiChatClient implements BackgroundClient {
  readonly model: string;
  private readonly pool: Pool;
  private readonly path: string;
  private readonly headers: Record<string, string>;
  private readonly origin: string;
  private readonly bodyTimeoutMs: number;

  constructor(options: OpenAiChatClientOptions) {
    let url: URL;
    try {
      url = new URL(options.baseUrl);
    } catch (err) {
      throw new BackgroundError("invalid_argument", `background baseUrl is not a URL: ${JSON.stringify(options.baseUrl)}`, { cause: err });
    }
    this.origin = url.origin;
    this.path = joinPath(url.pathname, "/v1/chat/completions");
    this.model = options.model ?? "default";
    this.headers = { "content-type": "application/json", accept: "text/event-stream", ...options.headers };
    if (options.apiKey !== undefined && options.apiKey !== "") this.headers.authorization = `Bearer ${options.apiKey}`;
    this.bodyTimeoutMs = options.bodyTimeoutMs ?? 60_000;
    this.pool = new Pool(url.origin, {
      connections: options.connections ?? 8,
      headersTimeout: options.headersTimeoutMs ?? 30_000,
      bodyTimeout: this.bodyTimeoutMs * 2,
      keepAliveTimeout: 30_000,
    });
  }

  async *streamChat(messages: ChatMessage[], options: StreamChatOptions = {}): AsyncGenerator<BackgroundDelta> {
    const { signal } = options;
    const what = `background model ${this.origin}`;
    if (signal?.aborted === true) throw new BackgroundError("aborted", `${what}: aborted before the request`);
    const body: Record<string, unknown> = {
      model: options.model ?? this.model,
      messages,
      stream: true,
      stream_options: { include_usage: true },
    };
    if (options.tools !== undefined && options.tools.length > 0) body.tools = options.tools;
    if (options.maxTokens !== undefined) body.max_tokens = options.maxTokens;
    if (options.temperature !== undefined) body.temperature = options.temperature;

    let response: Awaited<ReturnType<Pool["request"]>>;
    try {
      response = await this.pool.request({
        path: this.path,
        method: "POST",
        headers: this.headers,
        body: JSON.stringify(body),
        ...(signal === undefined ? {} : { signal }),
      });
    } catch (err) {
      throw mapTransportError(err, signal, what);
    }
    if (response.statusCode < 200 || response.statusCode >= 300) {
      let detail: string;
      try {
        detail = await readErrorBody(response.body);
      } catch {
        detail = "";
      }
      throw new BackgroundError(`http_${response.statusCode}`, `${what} answered HTTP ${response.statusCode}${detail === "" ? "" : `: ${detail}`}`, {
        status: response.statusCode,
      });
    }

    // A server that ignored stream: true answers one JSON object: not something a retry would change.
    const contentType = String(response.headers["content-type"] ?? "");
    if (contentType.startsWith("application/json")) {
      const detail = await readErrorBody(response.body).catch(() => "");
      throw new BackgroundError("bad_response", `${what} answered with JSON, not an event stream (does it stream chat completions?)${detail === "" ? "" : `: ${detail}`}`);
    }

    // Own stall watchdog: undici's bodyTimeout is coarse and not reliably armed on every chunk.
    const stream = response.body;
    let stallTimer: NodeJS.Timeout | undefined;
    const armStallTimer = () => {
      clearTimeout(stallTimer);
      stallTimer = setTimeout(() => {
        stream.destroy(new BackgroundError("timeout", `${what}: stream stalled for ${this.bodyTimeoutMs} ms`));
      }, this.bodyTimeoutMs);
    };
    async function* watched(): AsyncGenerator<Uint8Array> {
      armStallTimer();
      for await (const chunk of stream) {
        armStallTimer();
        yield chunk as Uint8Array;
      }
    }
    const drafts = new Map<number, ToolCallDraft>();
    const answerId = randomBytes(4).toString("hex");
    let finishReason: string | undefined;
    let usage: ChatUsage | undefined;
    let sawDone = false;
    let contentChars = 0;
    /** Tool calls by their id, for servers that stream parallel calls without an index. */
    const indexById = new Map<string, number>();
    let lastIndex = 0;
    try {
      for await (const data of readSseData(watched(), { maxEventChars: MAX_EVENT_CHARS })) {
        // Nothing after [DONE] counts; a proxy that keeps the body open (heartbeats) must not hold a finished answer.
        if (data.trim() === "[DONE]") {
          sawDone = true;
          break;
        }
        let chunk: ChunkJson;
        try {
          chunk = JSON.parse(data) as ChunkJson;
        } catch (err) {
          throw new BackgroundError("bad_response", `${what} sent an event that is not JSON: ${data.slice(0, 200)}`, { cause: err });
        }
        if (chunk === null || typeof chunk !== "object") throw new BackgroundError("bad_response", `${what} sent an event that is not an object: ${data.slice(0, 200)}`);
        if (chunk.error != null) {
          throw new BackgroundError("bad_response", `${what} reported an error mid-stream: ${chunk.error.message ?? JSON.stringify(chunk.error)}`);
        }
        if (chunk.usage != null) {
          usage = { promptTokens: chunk.usage.prompt_tokens ?? 0, completionTokens: chunk.usage.completion_tokens ?? 0 };
        }
        const choice = chunk.choices?.[0];
        if (choice === undefined || choice === null) continue;
        const content = choice.delta?.content;
        if (typeof content === "string" && content !== "") {
          // An answer past the cap ends there, as one cut by max_tokens would (not every server takes max_tokens).
          const room = MAX_ANSWER_CHARS - contentChars;
          contentChars += content.length;
          if (content.length >= room) {
            if (room > 0) yield { type: "content", text: content.slice(0, room) };
            finishReason = "length";
            break;
          }
          yield { type: "content", text: content };
        }
        for (const call of choice.delta?.tool_calls ?? []) {
          let index = call.index ?? undefined;
          if (index === undefined) {
            // Without an index a new id starts a new call; a piece with no id continues the last one.
            const known = call.id ? indexById.get(call.id) : lastIndex;
            index = known ?? (drafts.size === 0 ? 0 : Math.max(...drafts.keys()) + 1);
          }
          lastIndex = index;
          if (call.id) indexById.set(call.id, index);
          let draft = drafts.get(index);
          if (draft === undefined) {
            draft = { id: "", name: "", arguments: "" };
            drafts.set(index, draft);
          }
          // The id and name come whole in the call's first piece (later ones repeat them, or leave them out or null);
          // the arguments come in pieces.
          if (typeof call.id === "string" && call.id !== "" && draft.id === "") draft.id = call.id;
          const name = call.function?.name;
          if (typeof name === "string" && name !== "" && draft.name === "") draft.name = name;
          const args = call.function?.arguments;
          if (typeof args === "string") draft.arguments += args;
          if (draft.arguments.length > MAX_EVENT_CHARS) throw new BackgroundError("bad_response", `${what} streamed tool-call arguments over ${MAX_EVENT_CHARS} characters`);
        }
        if (choice.finish_reason != null) finishReason = choice.finish_reason;
        // SGLang's word for a request it gave up (an /abort_request, a scheduler that stopped): not an answer.
        if (finishReason === "abort") throw new BackgroundError("unavailable", `${what} aborted the request`);
      }
    } catch (err) {
      throw mapTransportError(err, signal, what);
    } finally {
      clearTimeout(stallTimer);
      // Also reached when the consumer stops iterating early: never leave a half-read body.
      if (!response.body.readableEnded) response.body.destroy();
    }
    if (!sawDone && finishReason === undefined) {
      throw new BackgroundError("unavailable", `${what} closed the stream before it finished`);
    }
    for (const [index, draft] of [...drafts.entries()].sort((a, b) => a[0] - b[0])) {
      if (draft.name === "") throw new BackgroundError("bad_response", `${what} streamed a tool call without a name (index ${index})`);
      // A server that gives no id gets one unique to this answer: the tool results of every round go back in one conversation.
      yield { type: "tool_call", id: draft.id === "" ? `call_${answerId}_${index}` : draft.id, name: draft.name, argumentsJson: draft.arguments === "" ? "{}" : draft.arguments };
    }
    yield { type: "done", finishReason: finishReason ?? "stop", ...(usage === undefined ? {} : { usage }) };
  }

  async close(): Promise<void> {
    await this.pool.close();
  }
}
