// SglangClient: a typed client for SGLang's native HTTP API (/generate,
// sessions, streaming sessions, health, model and server info) over one
// keep-alive undici pool. Wire facts and their sources: docs/sglang-http.md.
import { randomUUID } from "node:crypto";
import { Pool, request, type Dispatcher } from "undici";
import { AbortError, ConnectionError, MicroturnError, TimeoutError, UnavailableError } from "../core/error.js";
import { readCapped } from "../core/read-capped.js";
import { readSseData, SseLimitError } from "../core/sse.js";
import { DeltaTracker, type StreamTextMode } from "./deltas.js";
import { type ErrorContext, errorFromAbort, errorFromHttpResponse, errorFromStreamEvent } from "./errors.js";
import { StreamingSession, type StreamingSessionOptions } from "./streaming-session.js";
import type {
  SglangFinishReason,
  SglangGenerateOutput,
  SglangGenerateRequest,
  SglangMetaInfo,
  SglangModelInfo,
  SglangServerInfo,
} from "./types.js";

/** Header SGLang's router (model gateway) hashes on with the consistent_hashing or manual policy. */
export const SGLANG_ROUTING_HEADER = "X-SMG-Routing-Key";

export interface SglangClientOptions {
  /** Server or router URL, e.g. http://127.0.0.1:30000. Falls back to SGLANG_URL. */
  baseUrl?: string;
  /** Sent as `Authorization: Bearer`; SGLang's --api-key. Falls back to SGLANG_API_KEY. */
  apiKey?: string;
  /** Routing key for requests outside a session; session requests always use the session id. */
  routingKey?: string;
  /** Longest wait for the response to start, and between two reads of its body, ms. Default 60 000. */
  timeoutMs?: number;
  /** Connection pool to use instead of the client's own (which `close()` then leaves open). */
  dispatcher?: Dispatcher;
  /**
   * Most connections of the client's own pool. Default: no cap. Every streamed
   * micro-turn holds a connection until it ends, so a cap below the number of
   * concurrently streaming sessions queues their turns.
   */
  connections?: number;
  /** Stream text mode when known (the server's --incremental-streaming-output); detected per request otherwise. */
  streamTextMode?: StreamTextMode;
  /** Extra headers on every request. */
  headers?: Record<string, string>;
}

export interface CallOptions {
  signal?: AbortSignal;
  /** Overrides the client's timeoutMs for this call. */
  timeoutMs?: number;
  /** Overrides the client's routing key (ignored for session requests). */
  routingKey?: string;
}

/** Result of a non-streaming `/generate`. */
export interface GenerateResult {
  text: string;
  tokenIds: number[] | undefined;
  metaInfo: SglangMetaInfo;
  finishReason: SglangFinishReason;
}

/** One streamed step: only what is new since the previous delta. */
export interface GenerateDelta {
  text: string;
  tokenIds: number[] | undefined;
  metaInfo: SglangMetaInfo;
  /** Present on the last delta. */
  finishReason?: SglangFinishReason;
}

export interface OpenSessionOptions extends CallOptions {
  /** SGLang's required `capacity_of_str_len` (stored by the server, not enforced). */
  capacityOfStrLen: number;
  /** Chosen by the client when left out, so the open request can carry the routing key. */
  sessionId?: string;
  /** Streaming session: append-only, one request in flight, KV kept between turns. Needs --enable-streaming-session. */
  streaming?: boolean;
  /** Idle timeout after which the server closes the session, seconds. */
  timeoutS?: number;
}

interface SendOptions extends CallOptions {
  body?: unknown;
  stream?: boolean;
  context: ErrorContext;
}

const DEFAULT_TIMEOUT_MS = 60_000;

export class SglangClient {
  readonly baseUrl: string;
  private readonly apiKey: string | undefined;
  private readonly routingKey: string | undefined;
  private readonly timeoutMs: number;
  private readonly dispatcher: Dispatcher;
  private readonly ownsDispatcher: boolean;
  private readonly streamTextMode: StreamTextMode | undefined;
  private readonly extraHeaders: Record<string, string>;

  constructor(options: SglangClientOptions = {}) {
    const baseUrl = options.baseUrl ?? process.env.SGLANG_URL;
    if (!baseUrl) {
      throw new MicroturnError("SglangClient needs a server URL: pass baseUrl or set SGLANG_URL.");
    }
    let url: URL;
    try {
      url = new URL(baseUrl);
    } catch (cause) {
      throw new MicroturnError(`SglangClient baseUrl is not a URL: ${JSON.stringify(baseUrl)}`, { cause });
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new MicroturnError(`SglangClient baseUrl must be http(s), got ${url.protocol}`);
    }
    this.baseUrl = url.href.replace(/\/+$/, "");
    this.apiKey = options.apiKey ?? process.env.SGLANG_API_KEY;
    this.routingKey = options.routingKey;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.streamTextMode = options.streamTextMode;
    this.extraHeaders = { ...options.headers };
    this.ownsDispatcher = options.dispatcher === undefined;
    this.dispatcher =
      options.dispatcher ??
      new Pool(url.origin, { connections: options.connections ?? null, keepAliveTimeout: 30_000, pipelining: 1 });
  }

  /** `POST /generate` without streaming. A `finish_reason` of type "abort" is thrown as a typed error. */
  async generate(req: SglangGenerateRequest, options: CallOptions = {}): Promise<GenerateResult> {
    const context = requestContext(req);
    const output = (await this.sendJson("POST", "/generate", { ...options, body: { ...req, stream: false }, context })) as
      | SglangGenerateOutput
      | undefined;
    if (!output || typeof output !== "object" || !output.meta_info) {
      throw new MicroturnError("SGLang /generate answered without meta_info (a batch or an unexpected body).");
    }
    const finishReason = output.meta_info.finish_reason;
    if (finishReason?.type === "abort") throw errorFromAbort(finishReason, { ...context, requestId: output.meta_info.id });
    return {
      text: output.text ?? "",
      tokenIds: output.output_ids,
      metaInfo: output.meta_info,
      finishReason: finishReason ?? { type: "stop" },
    };
  }

  /**
   * `POST /generate` with `stream: true`, as deltas (new text only) whether the
   * server streams cumulative or incremental text. Breaking out of the loop
   * closes the connection, which makes SGLang abort the request.
   */
  async *generateStream(req: SglangGenerateRequest, options: CallOptions = {}): AsyncGenerator<GenerateDelta, void, undefined> {
    const context = requestContext(req);
    const response = await this.send("POST", "/generate", { ...options, body: { ...req, stream: true }, stream: true, context });
    const tracker = new DeltaTracker(this.streamTextMode);
    let finished = false;
    const events = readSseData(response.body)[Symbol.asyncIterator]();
    try {
      for (;;) {
        const next = await events.next();
        if (next.done) break;
        const data = next.value;
        if (data === "[DONE]") {
          finished = true;
          break;
        }
        let event: Record<string, unknown>;
        try {
          event = JSON.parse(data) as Record<string, unknown>;
        } catch (cause) {
          throw new MicroturnError(`SGLang sent an SSE event that is not JSON: ${data.slice(0, 200)}`, { cause });
        }
        if (event.error !== undefined && event.meta_info === undefined) throw errorFromStreamEvent(event, context);
        const output = event as unknown as SglangGenerateOutput;
        if (!output.meta_info) throw new MicroturnError("SGLang stream event without meta_info.");
        const finishReason = output.meta_info.finish_reason ?? undefined;
        if (finishReason?.type === "abort") throw errorFromAbort(finishReason, { ...context, requestId: output.meta_info.id });
        const delta = tracker.next(output);
        if (!finishReason) {
          yield { ...delta, metaInfo: output.meta_info };
          continue;
        }
        // The result is final. The [DONE] behind it is read first, so the connection goes back to the pool; a server
        // that keeps the stream open past it cannot hold the turn: after DONE_GRACE_MS the body is dropped.
        finished = true;
        await untilDone(events, DONE_GRACE_MS);
        yield { ...delta, metaInfo: output.meta_info, finishReason };
        break;
      }
    } catch (error) {
      throw this.transportError(error, options);
    } finally {
      if (!response.body.destroyed) response.body.destroy();
    }
    if (!finished) throw new ConnectionError("SGLang closed the stream before the result finished.");
  }

  /** `POST /open_session`; resolves to the session id (SGLang answers with a bare JSON string). */
  async openSession(options: OpenSessionOptions): Promise<string> {
    const sessionId = options.sessionId ?? randomUUID().replaceAll("-", "");
    const body = {
      capacity_of_str_len: options.capacityOfStrLen,
      session_id: sessionId,
      ...(options.streaming !== undefined ? { streaming: options.streaming } : {}),
      ...(options.timeoutS !== undefined ? { timeout: options.timeoutS } : {}),
    };
    const id = await this.sendJson("POST", "/open_session", { ...options, body, routingKey: sessionId, context: { sessionId } });
    if (typeof id !== "string") {
      throw new MicroturnError(`SGLang /open_session answered ${JSON.stringify(id)}, expected the session id as a JSON string.`);
    }
    return id;
  }

  /** `POST /close_session`. SGLang answers 200 for an unknown id too; a session with a request in flight closes when it finishes. */
  async closeSession(sessionId: string, options: CallOptions = {}): Promise<void> {
    await this.sendJson("POST", "/close_session", {
      ...options,
      body: { session_id: sessionId },
      routingKey: sessionId,
      context: { sessionId },
    });
  }

  /** Opens a streaming session and wraps it: append a micro-turn, stream its output, one in flight. */
  async streamingSession(options: StreamingSessionOptions): Promise<StreamingSession> {
    const id = await this.openSession({ ...options, streaming: true });
    return new StreamingSession(this, id);
  }

  /** `GET /health`. Resolves when the server can serve; UnavailableError on 503 (starting, unhealthy, draining). */
  async health(options: CallOptions = {}): Promise<void> {
    await this.sendJson("GET", "/health", { ...options, context: {} });
  }

  /** `GET /health_generate`: like health, after running one token through the model (takes about a second on SGLang). */
  async healthGenerate(options: CallOptions = {}): Promise<void> {
    await this.sendJson("GET", "/health_generate", { ...options, context: {} });
  }

  /** `GET /model_info`, falling back to the older `/get_model_info`. */
  async modelInfo(options: CallOptions = {}): Promise<SglangModelInfo> {
    return (await this.getWithFallback("/model_info", "/get_model_info", options)) as SglangModelInfo;
  }

  /** `GET /server_info`, falling back to the older `/get_server_info`. */
  async serverInfo(options: CallOptions = {}): Promise<SglangServerInfo> {
    return (await this.getWithFallback("/server_info", "/get_server_info", options)) as SglangServerInfo;
  }

  /** Closes the client's own connection pool (a dispatcher passed in is left to its owner). */
  async close(): Promise<void> {
    if (this.ownsDispatcher) await this.dispatcher.close();
  }

  private async getWithFallback(path: string, fallback: string, options: CallOptions): Promise<unknown> {
    try {
      return await this.sendJson("GET", path, { ...options, context: {} });
    } catch (error) {
      if (!(error instanceof MicroturnError) || (error as { status?: number }).status !== 404) throw error;
      return this.sendJson("GET", fallback, { ...options, context: {} });
    }
  }

  private async sendJson(method: "GET" | "POST", path: string, options: SendOptions): Promise<unknown> {
    const response = await this.send(method, path, options);
    let text: string;
    try {
      const read = await readCapped(response.body, MAX_JSON_BODY_BYTES);
      if (read.truncated) {
        throw new ConnectionError(`SGLang ${path} answered a body over ${MAX_JSON_BODY_BYTES} bytes; this client refuses it.`);
      }
      text = read.text;
    } catch (error) {
      throw this.transportError(error, options);
    }
    if (text === "") return undefined;
    try {
      return JSON.parse(text);
    } catch (cause) {
      throw new MicroturnError(`SGLang ${path} answered a body that is not JSON: ${text.slice(0, 200)}`, { cause });
    }
  }

  /** Sends one request; resolves once a 2xx status arrived, throws the typed error otherwise. */
  private async send(method: "GET" | "POST", path: string, options: SendOptions): Promise<Dispatcher.ResponseData> {
    if (options.signal?.aborted) throw new AbortError("The request was aborted by the caller.", { cause: options.signal.reason });
    const routingKey = options.context.sessionId ?? options.routingKey ?? this.routingKey;
    const headers: Record<string, string> = {
      ...this.extraHeaders,
      accept: options.stream ? "text/event-stream" : "application/json",
      ...(options.body !== undefined ? { "content-type": "application/json" } : {}),
      ...(this.apiKey ? { authorization: `Bearer ${this.apiKey}` } : {}),
      ...(routingKey ? { [SGLANG_ROUTING_HEADER.toLowerCase()]: routingKey } : {}),
    };
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    let response: Dispatcher.ResponseData;
    try {
      response = await request(this.baseUrl + path, {
        dispatcher: this.dispatcher,
        method,
        headers,
        body: options.body === undefined ? null : JSON.stringify(options.body),
        signal: options.signal,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
    } catch (error) {
      throw this.transportError(error, options);
    }
    if (response.statusCode >= 200 && response.statusCode < 300) return response;
    let text = "";
    try {
      // Only a message is wanted from an error body: a huge one is cut, not held.
      text = (await readCapped(response.body, MAX_ERROR_BODY_BYTES)).text;
    } catch {
      // The status alone still says what went wrong.
    }
    if (response.statusCode === 503 && text === "") {
      throw new UnavailableError(`SGLang at ${this.baseUrl} is unavailable (HTTP 503 on ${path}).`, {
        status: 503,
        retryable: true,
        ...options.context,
      });
    }
    throw errorFromHttpResponse(response.statusCode, text, options.context);
  }

  /** Maps undici and socket failures to the SDK's classes; SDK errors pass through. */
  private transportError(error: unknown, options: CallOptions): unknown {
    if (MicroturnError.isInstance(error)) return error;
    if (error instanceof SseLimitError) return new ConnectionError(`SGLang at ${this.baseUrl} sent a stream this client refuses: ${error.message}`, { cause: error });
    if (options.signal?.aborted) return new AbortError("The request was aborted by the caller.", { cause: error });
    const code = errorCode(error);
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    if (code === "UND_ERR_HEADERS_TIMEOUT" || code === "UND_ERR_BODY_TIMEOUT") {
      return new TimeoutError(`SGLang at ${this.baseUrl} made no progress within ${timeoutMs} ms.`, { cause: error });
    }
    if (code === "UND_ERR_ABORTED" || (error instanceof Error && error.name === "AbortError")) {
      return new AbortError("The request was aborted by the caller.", { cause: error });
    }
    if (code !== undefined && (code.startsWith("UND_ERR") || /^E[A-Z]+$/.test(code))) {
      const detail = error instanceof Error && error.message ? error.message : code;
      return new ConnectionError(`Connection to SGLang at ${this.baseUrl} failed: ${detail}`, { cause: error });
    }
    return error;
  }
}

/** Largest JSON answer taken (a non-streamed /generate included); a bigger one is refused, not buffered. */
const MAX_JSON_BODY_BYTES = 16 * 1024 * 1024;
/** Most of an error body read for its message. */
const MAX_ERROR_BODY_BYTES = 64 * 1024;

/** How long the [DONE] that follows a finished result is waited for. */
const DONE_GRACE_MS = 1000;

/** Reads to the end of the stream or its [DONE], for at most `ms`; what else arrives is dropped. */
async function untilDone(events: AsyncIterator<string>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<"expired">((resolve) => (timer = setTimeout(resolve, ms, "expired")));
  try {
    for (;;) {
      const next = await Promise.race([events.next(), expired]);
      if (next === "expired" || next.done || next.value === "[DONE]") return;
    }
  } catch {
    // The result is in hand; a stream that breaks after it changes nothing.
  } finally {
    clearTimeout(timer);
  }
}

function requestContext(req: SglangGenerateRequest): ErrorContext {
  return {
    ...(req.session_params?.id ? { sessionId: req.session_params.id } : {}),
    ...(req.rid ? { requestId: req.rid } : {}),
  };
}

function errorCode(error: unknown): string | undefined {
  if (typeof error !== "object" || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string") return code;
  // Node reports a refused dual-stack connect as an AggregateError.
  const inner = (error as { errors?: unknown[] }).errors;
  return Array.isArray(inner) && inner.length > 0 ? errorCode(inner[0]) : undefined;
}
