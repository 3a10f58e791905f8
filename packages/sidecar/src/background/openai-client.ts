// Background model over any OpenAI-compatible chat-completions endpoint
// (SGLang, vLLM, llama.cpp server, hosted APIs): streamed SSE over a
// keep-alive undici Pool.
import { Pool, errors as undiciErrors, type Dispatcher } from "undici";
import { ChatChunkReader, chatCompletionBody, MAX_EVENT_CHARS } from "./chat-chunks.js";
import type { BackgroundClient, BackgroundDelta, ChatMessage, StreamChatOptions } from "./client.js";
import { BackgroundError } from "./errors.js";
import { readCapped, readSseData, SseLimitError } from "@microturn/sdk";

export interface OpenAiChatClientOptions {
  /** Server origin, optionally with a path prefix; `/v1/chat/completions` is appended (once). */
  baseUrl: string;
  /** Sent as `Authorization: Bearer <key>` when set. */
  apiKey?: string;
  /** Default model name; SGLang accepts any name for its one served model. Default "default". */
  model?: string;
  /** Pooled keep-alive connections, the most requests in flight at once (one stream each). Default 8; the sidecar sizes it for every task it may run at once. */
  connections?: number;
  /** Deadline for the response headers, ms. Default 30000. */
  headersTimeoutMs?: number;
  /** Deadline between two body chunks, ms (a stalled stream). Default 60000. */
  bodyTimeoutMs?: number;
  /** Extra headers on every request (routing keys, org ids). */
  headers?: Record<string, string>;
}

function joinPath(prefix: string, path: string): string {
  const trimmed = prefix.replace(/\/+$/, "");
  return trimmed.endsWith("/v1") ? `${trimmed}${path.slice(3)}` : `${trimmed}${path}`;
}

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
    const body = chatCompletionBody(this.model, messages, options);

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
        // Once the answer has its finish reason, heartbeats do not hold it open: only [DONE] or usage may follow.
        if (!reader.finished) armStallTimer();
        yield chunk as Uint8Array;
      }
    }
    const reader = new ChatChunkReader(what);
    let sawDone = false;
    /** The failure is the answer's own (an abort finish, a bad event), not the transport's. */
    let fromReader = false;
    try {
      for await (const data of readSseData(watched(), { maxEventChars: MAX_EVENT_CHARS })) {
        // Nothing after [DONE] counts; a proxy that keeps the body open (heartbeats) must not hold a finished answer.
        if (data.trim() === "[DONE]") {
          sawDone = true;
          break;
        }
        let cap: boolean;
        try {
          cap = yield* reader.read(data);
        } catch (err) {
          fromReader = true;
          throw err;
        }
        if (cap) break;
        // Finish reason and usage: the answer is whole, whether or not the server ever sends [DONE].
        if (reader.finished && reader.hasUsage) break;
      }
    } catch (err) {
      // An answer that had its finish reason is whole: a stream that stalls or drops before [DONE] loses nothing.
      if (fromReader || !reader.finished || signal?.aborted) throw mapTransportError(err, signal, what);
    } finally {
      clearTimeout(stallTimer);
      // Also reached when the consumer stops iterating early: never leave a half-read body.
      if (!response.body.readableEnded) response.body.destroy();
    }
    if (!sawDone && !reader.finished) {
      throw new BackgroundError("unavailable", `${what} closed the stream before it finished`);
    }
    yield* reader.end();
  }

  async close(): Promise<void> {
    await this.pool.close();
  }
}
