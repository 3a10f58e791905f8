// A stand-in for an SGLang 0.5.23 HTTP server, for tests without a GPU. It
// follows the behaviour written up in docs/sglang-http.md: /generate (JSON and
// SSE, cumulative or incremental text), sessions and streaming sessions (one
// request in flight, rollback of aborted turns, idle timeout, deferred close),
// abort finish reasons, SGLang's error body shapes, health, model/server info.
// The "model" is a function of the appended text; one token per code point.
import { randomUUID } from "node:crypto";
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { type FakeSession, type Turn, detokenize, planTurn, reapSessions, sessionTurnInput, tokenize } from "./sglang-sessions.js";

export interface FakeSglangServerOptions {
  /** Like --incremental-streaming-output: stream events carry only new text and ids. Default false (SGLang's default). */
  incrementalStreamingOutput?: boolean;
  /** Like --enable-streaming-session. Default true. */
  enableStreamingSession?: boolean;
  /** Like --api-key. */
  apiKey?: string;
  /** Longest session sequence / prompt in tokens (SGLang's max_req_input_len). Default 4096. */
  maxReqInputLen?: number;
  modelPath?: string;
  /** The "model": output text for an appended input. Default: the input upper-cased. */
  respond?: (input: { inputText: string; historyText: string }) => string;
  /** Delay before each streamed token, ms. Default 0. */
  tokenDelayMs?: number;
  /** Write each SSE event in two halves, splitting multi-byte characters across reads. */
  splitWrites?: boolean;
}

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: unknown;
}

export interface InjectedAbort {
  message: string;
  statusCode?: number | null;
  errType?: string | null;
}

const SAMPLING_KEYS = new Set([
  "max_new_tokens", "stop", "stop_token_ids", "stop_regex", "temperature", "top_p", "top_k", "min_p",
  "frequency_penalty", "presence_penalty", "repetition_penalty", "min_new_tokens", "n", "json_schema", "regex",
  "ebnf", "structural_tag", "ignore_eos", "skip_special_tokens", "spaces_between_special_tokens", "no_stop_trim",
  "stream_interval", "logit_bias", "sampling_seed", "custom_params", "beam_width", "watermark", "choice",
]);

export class FakeSglangServer {
  readonly url: string;
  /** Every request received, in order. */
  readonly requests: RecordedRequest[] = [];
  /** False makes /health and /health_generate answer 503. */
  healthy = true;
  private readonly server: Server;
  private readonly options: Required<Omit<FakeSglangServerOptions, "apiKey">> & { apiKey: string | undefined };
  private readonly sessions = new Map<string, FakeSession>();
  private readonly reaper: NodeJS.Timeout;
  private nextAbort: InjectedAbort | undefined;
  private nextStreamFault: { afterEvents: number; kind: "drop" | "stall" } | undefined;

  private constructor(server: Server, options: FakeSglangServerOptions) {
    this.server = server;
    const { port } = server.address() as AddressInfo;
    this.url = `http://127.0.0.1:${port}`;
    this.options = {
      incrementalStreamingOutput: options.incrementalStreamingOutput ?? false,
      enableStreamingSession: options.enableStreamingSession ?? true,
      apiKey: options.apiKey,
      maxReqInputLen: options.maxReqInputLen ?? 4096,
      modelPath: options.modelPath ?? "microturn/fake-sglang",
      respond: options.respond ?? (({ inputText }) => inputText.toUpperCase()),
      tokenDelayMs: options.tokenDelayMs ?? 0,
      splitWrites: options.splitWrites ?? false,
    };
    // SGLang reaps timed-out sessions about once a second; tests use short timeouts.
    this.reaper = setInterval(() => reapSessions(this.sessions), 50).unref();
  }

  static async start(options: FakeSglangServerOptions = {}): Promise<FakeSglangServer> {
    let fake: FakeSglangServer | undefined;
    const server = createServer((req, res) => {
      fake?.handle(req, res).catch((error: unknown) => {
        if (!res.headersSent) sendJson(res, 500, { error: { message: String(error) } });
        else res.destroy();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    fake = new FakeSglangServer(server, options);
    return fake;
  }

  /** The next /generate finishes with this abort (as the scheduler's abort paths do). */
  injectAbort(abort: InjectedAbort): void {
    this.nextAbort = abort;
  }

  /** The next stream breaks after `afterEvents` events: "drop" destroys the socket, "stall" stops writing. */
  faultNextStream(afterEvents: number, kind: "drop" | "stall"): void {
    this.nextStreamFault = { afterEvents, kind };
  }

  /** State of an open session, or undefined once closed or reaped. */
  session(id: string): { tokens: number; text: string; inFlight: boolean; streaming: boolean } | undefined {
    const s = this.sessions.get(id);
    return s && { tokens: s.tokens.length, text: detokenize(s.tokens), inFlight: s.inFlight, streaming: s.streaming };
  }

  openSessionIds(): string[] {
    return [...this.sessions.keys()];
  }

  async close(): Promise<void> {
    clearInterval(this.reaper);
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const raw = await readBody(req);
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    let body: unknown;
    try {
      body = raw === "" ? undefined : JSON.parse(raw);
    } catch {
      body = raw;
    }
    this.requests.push({ method: req.method ?? "GET", path, headers: req.headers, body });
    reapSessions(this.sessions);
    if (!path.startsWith("/health") && this.options.apiKey && req.headers.authorization !== `Bearer ${this.options.apiKey}`) {
      return sendJson(res, 401, { error: "Unauthorized" });
    }
    switch (path) {
      case "/health":
      case "/health_generate":
        res.writeHead(this.healthy ? 200 : 503).end();
        return;
      case "/model_info":
      case "/get_model_info":
        return sendJson(res, 200, this.modelInfo());
      case "/server_info":
      case "/get_server_info":
        return sendJson(res, 200, this.serverInfo());
      case "/open_session":
        return this.openSession(res, body);
      case "/close_session":
        return this.closeSession(res, body);
      case "/generate":
        return this.generate(req, res, body);
      default:
        return sendJson(res, 404, { detail: "Not Found" });
    }
  }

  private openSession(res: ServerResponse, body: unknown): void {
    const b = (body ?? {}) as Record<string, unknown>;
    if (typeof b.capacity_of_str_len !== "number") {
      return sendJson(res, 400, validationError("capacity_of_str_len: Field required"));
    }
    if (b.streaming === true && !this.options.enableStreamingSession) {
      return sendJson(res, 400, { error: { message: "Streaming sessions are disabled. Please relaunch with --enable-streaming-session." } });
    }
    const id = typeof b.session_id === "string" ? b.session_id : randomUUID().replaceAll("-", "");
    if (this.sessions.has(id)) {
      return sendJson(res, 400, { error: { message: "Failed to open the session. Check if a session with the same id is still open." } });
    }
    this.sessions.set(id, {
      id,
      streaming: b.streaming === true,
      timeoutS: typeof b.timeout === "number" ? b.timeout : undefined,
      lastActiveMs: performance.now(),
      tokens: [],
      lastRid: undefined,
      inFlight: false,
      closeOnFinish: false,
    });
    sendJson(res, 200, id);
  }

  private closeSession(res: ServerResponse, body: unknown): void {
    const id = (body as { session_id?: unknown } | undefined)?.session_id;
    if (typeof id !== "string") return sendJson(res, 400, validationError("session_id: Field required"));
    const session = this.sessions.get(id);
    // Like SGLang: unknown ids are logged and answered 200; an in-flight turn defers the close.
    if (session?.inFlight) session.closeOnFinish = true;
    else this.sessions.delete(id);
    res.writeHead(200).end();
  }

  private async generate(req: IncomingMessage, res: ServerResponse, body: unknown): Promise<void> {
    const b = (typeof body === "object" && body !== null ? body : {}) as Record<string, unknown>;
    const stream = b.stream === true;
    const sampling = (b.sampling_params ?? {}) as Record<string, unknown>;
    const unknown = Object.keys(sampling).find((key) => !SAMPLING_KEYS.has(key));
    if (unknown !== undefined) {
      return sendJson(res, 400, { error: `unknown field \`${unknown}\`, expected one of ${[...SAMPLING_KEYS].map((k) => `\`${k}\``).join(", ")}` });
    }
    const rid = typeof b.rid === "string" ? b.rid : randomUUID().replaceAll("-", "");
    // Errors raised while normalizing the request: a 400 body, or an error event in a 200 stream.
    const invalid = validateGenerate(b, sampling);
    if (invalid !== undefined) {
      if (!stream) return sendJson(res, 400, { error: { message: invalid } });
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write(`data: ${JSON.stringify({ error: { message: invalid, type: "invalid_request_error", code: 400, retryable: false } })}\n\n`);
      res.end("data: [DONE]\n\n");
      return;
    }
    const inputIds = Array.isArray(b.input_ids) ? (b.input_ids as number[]) : undefined;
    const inputText = typeof b.text === "string" ? b.text : undefined;
    const sessionParams = b.session_params as { id?: string; rid?: string; offset?: number; replace?: boolean; drop_previous_output?: boolean } | undefined;
    const session = sessionParams?.id !== undefined ? this.sessions.get(sessionParams.id) : undefined;

    let turn: Turn;
    const injected = this.nextAbort;
    this.nextAbort = undefined;
    if (sessionParams?.id !== undefined) {
      turn = sessionTurnInput(session, sessionParams, { id: sessionParams.id, inputIds, inputText });
    } else {
      const promptIds = inputIds ?? tokenize(inputText ?? "", true);
      turn = { promptIds, newIds: promptIds };
    }
    if (turn.abort === undefined && injected) turn.abort = injected;
    if (turn.abort === undefined && turn.promptIds.length >= this.options.maxReqInputLen) {
      turn.abort = {
        message: `Input length (${turn.promptIds.length} tokens) exceeds the maximum allowed length (${this.options.maxReqInputLen} tokens). Use a shorter input or enable --allow-auto-truncate.`,
      };
    }
    const plan = planTurn(turn, sampling, this.options.respond, rid);
    if (session && turn.abort === undefined) {
      session.inFlight = true;
      session.lastActiveMs = performance.now();
    }
    const commit = (): void => {
      if (!session || turn.abort !== undefined) return;
      session.inFlight = false;
      session.tokens = [...turn.promptIds, ...plan.outputIds];
      session.lastRid = rid;
      if (session.closeOnFinish) this.sessions.delete(session.id);
    };
    const rollback = (): void => {
      if (session && turn.abort === undefined) {
        session.inFlight = false;
        if (session.closeOnFinish) this.sessions.delete(session.id);
      }
    };

    if (!stream) {
      await delay(this.options.tokenDelayMs * plan.events.length);
      const last = plan.events[plan.events.length - 1]!;
      const abort = last.meta_info.finish_reason as { type: string; status_code?: number | null; message?: string };
      commit();
      if (abort.type === "abort" && typeof abort.status_code === "number" && abort.status_code >= 400) {
        if (abort.status_code === 400) return sendJson(res, 400, { error: { message: abort.message } });
        return sendJson(res, abort.status_code, {
          object: "error", message: abort.message, type: String(abort.status_code), param: null, code: abort.status_code,
        });
      }
      return sendJson(res, 200, { text: last.text, output_ids: last.output_ids, meta_info: last.meta_info });
    }

    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    let clientGone = false;
    res.on("close", () => {
      if (!res.writableFinished) clientGone = true;
    });
    const fault = this.nextStreamFault;
    this.nextStreamFault = undefined;
    const incremental = this.options.incrementalStreamingOutput;
    for (const [index, event] of plan.events.entries()) {
      if (fault && index === fault.afterEvents) {
        rollback();
        // Flush what was written, then cut the connection without ending the chunked body.
        if (fault.kind === "drop") res.socket?.destroySoon();
        return;
      }
      if (this.options.tokenDelayMs > 0) await delay(this.options.tokenDelayMs);
      if (clientGone) return rollback();
      const payload = incremental
        ? { text: event.deltaText, output_ids: event.deltaIds, meta_info: event.meta_info }
        : { text: event.text, output_ids: event.output_ids, meta_info: event.meta_info };
      await this.writeEvent(res, `data: ${JSON.stringify(payload)}\n\n`);
    }
    commit();
    res.end("data: [DONE]\n\n");
  }

  private async writeEvent(res: ServerResponse, event: string): Promise<void> {
    const bytes = Buffer.from(event, "utf8");
    if (!this.options.splitWrites || bytes.length < 2) {
      res.write(bytes);
      return;
    }
    // Split inside a multi-byte character when there is one.
    let cut = bytes.findIndex((byte) => byte >= 0xc0) + 1;
    if (cut <= 0) cut = bytes.length >> 1;
    res.write(bytes.subarray(0, cut));
    await delay(5);
    res.write(bytes.subarray(cut));
  }

  private modelInfo(): Record<string, unknown> {
    return {
      model_path: this.options.modelPath,
      served_model_name: this.options.modelPath,
      tokenizer_path: this.options.modelPath,
      is_generation: true,
      preferred_sampling_params: null,
      weight_version: "default",
      load_format: "auto",
      reasoning_parser: null,
      tool_call_parser: null,
      disaggregation_mode: "null",
      has_image_understanding: false,
      has_audio_understanding: false,
      model_type: "fake",
      architectures: ["FakeForCausalLM"],
    };
  }

  private serverInfo(): Record<string, unknown> {
    return {
      model_path: this.options.modelPath,
      context_length: this.options.maxReqInputLen + 8,
      max_total_num_tokens: this.options.maxReqInputLen * 4,
      max_req_input_len: this.options.maxReqInputLen,
      enable_streaming_session: this.options.enableStreamingSession,
      incremental_streaming_output: this.options.incrementalStreamingOutput,
      status: "ready",
      internal_states: [{}],
      version: "0.5.23",
      frontend: "python",
    };
  }
}

function validateGenerate(body: Record<string, unknown>, sampling: Record<string, unknown>): string | undefined {
  if (body.text === undefined && body.input_ids === undefined) return "Either text, input_ids or input_embeds should be provided.";
  const max = sampling.max_new_tokens;
  if (typeof max === "number" && max < 0) return `max_new_tokens must be at least 0, got ${max}.`;
  const temperature = sampling.temperature;
  if (typeof temperature === "number" && temperature < 0) return `temperature must be non-negative, got ${temperature}.`;
  return undefined;
}

function validationError(detail: string): Record<string, unknown> {
  return { object: "error", message: `1 validation error: ${detail}`, type: "Bad Request", param: null, code: 400 };
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

function delay(ms: number): Promise<void> {
  return ms > 0 ? new Promise((resolve) => setTimeout(resolve, ms)) : Promise.resolve();
}
