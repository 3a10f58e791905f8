// The sglang-http engine: stock SGLang (--enable-streaming-session) over its
// native HTTP API, through the SDK's SglangClient so the wire code exists once.
// A session is one SGLang streaming session; a micro-turn is one streamed
// /generate with session_params. Text only, append-only (no rewind): see
// docs/sglang-http.md for what the pinned SGLang allows.
import { Modality } from "@microturn/protocol";
import { SglangClient, type SglangModelInfo, type SglangServerInfo } from "@microturn/sdk";
import type { Engine, EngineCapabilities, EngineSession, OpenSessionOptions } from "../engine.js";
import { EngineError } from "../errors.js";
import { toEngineError } from "./errors.js";
import { DEFAULT_TURN_TIMEOUT_MS, SglangHttpSession } from "./session.js";

export interface SglangHttpEngineOptions {
  /** SGLang server or router URL, e.g. http://127.0.0.1:30000. */
  url: string;
  /** Model id to report; defaults to the server's served_model_name or model_path. */
  model?: string;
  /** SGLang's --api-key. */
  apiKey?: string;
  /** Longest wait for a response to start or make progress, and longest a micro-turn may take, ms. Default 60 000. */
  timeoutMs?: number;
  /** Idle time after which SGLang closes a session the sidecar lost track of, s. Default 300. */
  sessionTimeoutS?: number;
  /** Context length to report when the server does not say (no /server_info). */
  maxContextTokens?: number;
  /** Client to use instead of one built from url/apiKey (left open by dispose). */
  client?: SglangClient;
}

const DEFAULT_SESSION_TIMEOUT_S = 300;

/** Probes the server (model and server info) and returns the engine, or throws EngineError("unavailable"). */
export async function createSglangHttpEngine(options: SglangHttpEngineOptions): Promise<Engine> {
  let client: SglangClient;
  try {
    client = options.client ?? new SglangClient({ baseUrl: options.url, apiKey: options.apiKey, timeoutMs: options.timeoutMs });
  } catch (error) {
    throw new EngineError("invalid_argument", `sglang-http: ${(error as Error).message}`, { cause: error });
  }
  const ownsClient = options.client === undefined;
  try {
    const model = await client.modelInfo();
    const server = await client.serverInfo().catch((error: unknown) => {
      // Servers behind a gateway may not expose /server_info; the context length then comes from options.
      if ((error as { status?: number }).status === 404) return undefined;
      throw error;
    });
    if (server?.enable_streaming_session === false) {
      throw new EngineError(
        "invalid_argument",
        `sglang-http: SGLang at ${client.baseUrl} runs without streaming sessions; relaunch it with --enable-streaming-session.`,
      );
    }
    return new SglangHttpEngine(client, ownsClient, capabilitiesOf(model, server, options), options);
  } catch (error) {
    if (ownsClient) await client.close();
    if (EngineError.isInstance(error)) throw error;
    const mapped = toEngineError(error);
    throw new EngineError(mapped.code === "internal" ? "unavailable" : mapped.code, `sglang-http: cannot reach SGLang at ${client.baseUrl}: ${mapped.message}`, {
      cause: error,
    });
  }
}

function capabilitiesOf(model: SglangModelInfo, server: SglangServerInfo | undefined, options: SglangHttpEngineOptions): EngineCapabilities {
  // SGLang refuses an input of max_req_input_len tokens or more: a session holds one fewer.
  const limit = server?.max_req_input_len !== undefined ? server.max_req_input_len - 1 : (server?.context_length ?? options.maxContextTokens);
  if (typeof limit !== "number" || limit <= 0) {
    throw new EngineError("invalid_argument", "sglang-http: the server does not report its context length; set maxContextTokens.");
  }
  return {
    engine: "sglang-http",
    modelId: options.model ?? model.served_model_name ?? model.model_path,
    inputModalities: [Modality.MODALITY_TEXT],
    outputModalities: [Modality.MODALITY_TEXT],
    supportsRewind: false,
    maxContextTokens: limit,
    randomWeights: false,
  };
}

class SglangHttpEngine implements Engine {
  readonly capabilities: EngineCapabilities;
  private readonly client: SglangClient;
  private readonly ownsClient: boolean;
  private readonly sessionTimeoutS: number;
  private readonly turnTimeoutMs: number;
  private readonly sessions = new Map<string, SglangHttpSession>();
  private disposed = false;

  constructor(client: SglangClient, ownsClient: boolean, capabilities: EngineCapabilities, options: SglangHttpEngineOptions) {
    this.client = client;
    this.ownsClient = ownsClient;
    this.capabilities = capabilities;
    this.sessionTimeoutS = options.sessionTimeoutS ?? DEFAULT_SESSION_TIMEOUT_S;
    this.turnTimeoutMs = options.timeoutMs ?? DEFAULT_TURN_TIMEOUT_MS;
  }

  async openSession(options: OpenSessionOptions = {}): Promise<EngineSession> {
    if (this.disposed) throw new EngineError("unavailable", "sglang-http: the engine was disposed.");
    if (options.audioOutput) throw new EngineError("unsupported_modality", "sglang-http: stock SGLang produces text only; use the sglang-grpc engine to speak.");
    const capacityTokens = options.capacityTokens ?? this.capabilities.maxContextTokens;
    if (!Number.isInteger(capacityTokens) || capacityTokens <= 0) {
      throw new EngineError("invalid_argument", `sglang-http: capacityTokens must be a positive integer, got ${capacityTokens}.`);
    }
    if (capacityTokens > this.capabilities.maxContextTokens) {
      throw new EngineError(
        "too_large",
        `sglang-http: capacityTokens ${capacityTokens} exceeds the server's limit of ${this.capabilities.maxContextTokens} tokens.`,
      );
    }
    try {
      const stream = await this.client.streamingSession({
        capacityOfStrLen: capacityTokens,
        timeoutS: this.sessionTimeoutS,
        ...(options.sessionId ? { sessionId: options.sessionId } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
      });
      const session = new SglangHttpSession(stream, capacityTokens, () => this.sessions.delete(stream.id), this.turnTimeoutMs);
      if (options.systemPrompt) {
        try {
          await session.prefill(options.systemPrompt, options.signal);
        } catch (error) {
          await session.close().catch(() => undefined);
          throw error;
        }
      }
      this.sessions.set(stream.id, session);
      return session;
    } catch (error) {
      throw toEngineError(error, options.sessionId);
    }
  }

  async health(signal?: AbortSignal): Promise<{ serving: boolean; activeSessions: number }> {
    try {
      await this.client.health(signal ? { signal } : {});
      return { serving: true, activeSessions: this.sessions.size };
    } catch (error) {
      throw toEngineError(error);
    }
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    // Best effort: a server that is gone reaps the sessions by their idle timeout.
    await Promise.allSettled([...this.sessions.values()].map((session) => session.close()));
    this.sessions.clear();
    if (this.ownsClient) await this.client.close();
  }
}
