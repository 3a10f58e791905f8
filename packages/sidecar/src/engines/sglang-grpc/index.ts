// The sglang-grpc engine: patched SGLang (sglang-patch) or any server of
// microturn.v1.StreamingSession, over gRPC. Open/rewind/close/health are
// unary calls with a deadline; a micro-turn is one server-streaming Append.
import { credentials as grpcCredentials, type ChannelCredentials, type ChannelOptions } from "@grpc/grpc-js";
import {
  Modality,
  PROTOCOL_VERSION,
  StreamingSessionClient,
  type EngineCapabilities as WireCapabilities,
} from "@microturn/protocol";
import type { Engine, EngineCapabilities, EngineSession, OpenSessionOptions } from "../engine.js";
import { EngineError } from "../errors.js";
import { unary } from "./call.js";
import { SglangGrpcSession } from "./session.js";

export { codeForStatus, toEngineError, ERROR_CODE_TRAILER } from "./errors.js";

export interface SglangGrpcEngineOptions {
  /** host:port of the StreamingSession server; a grpc:// prefix is accepted. */
  address: string;
  /** Deadline of each call, a whole micro-turn included, ms. Default 30 000. */
  timeoutMs?: number;
  /** Defaults to insecure (loopback, or a private network behind the sidecar). */
  credentials?: ChannelCredentials;
  channelOptions?: ChannelOptions;
}

function toCapabilities(wire: WireCapabilities | undefined): EngineCapabilities {
  return {
    engine: "sglang-grpc",
    modelId: wire?.modelId ?? "",
    inputModalities: wire?.inputModalities ?? [Modality.MODALITY_TEXT],
    outputModalities: wire?.outputModalities ?? [Modality.MODALITY_TEXT],
    supportsRewind: wire?.supportsRewind ?? false,
    maxContextTokens: wire?.maxContextTokens ?? 0,
    randomWeights: wire?.randomWeights ?? false,
  };
}

export class SglangGrpcEngine implements Engine {
  private readonly sessions = new Map<string, SglangGrpcSession>();
  private disposed = false;

  private constructor(
    private readonly client: StreamingSessionClient,
    readonly capabilities: EngineCapabilities,
    private readonly timeoutMs: number,
  ) {}

  /** Connects and probes Health; throws EngineError("unavailable") when the server does not answer. */
  static async connect(options: SglangGrpcEngineOptions): Promise<SglangGrpcEngine> {
    const address = options.address.replace(/^grpc:\/\//, "");
    if (!address) throw new EngineError("invalid_argument", "sglang-grpc needs an address (host:port)");
    const timeoutMs = options.timeoutMs ?? 30_000;
    const client = new StreamingSessionClient(address, options.credentials ?? grpcCredentials.createInsecure(), options.channelOptions ?? {});
    try {
      const health = await unary(client.health.bind(client), {}, { operation: "health", timeoutMs });
      return new SglangGrpcEngine(client, toCapabilities(health.capabilities), timeoutMs);
    } catch (error) {
      client.close();
      throw error;
    }
  }

  async openSession(options: OpenSessionOptions = {}): Promise<EngineSession> {
    if (this.disposed) throw new EngineError("unavailable", "engine disposed");
    const response = await unary(
      this.client.openSession.bind(this.client),
      {
        sessionId: options.sessionId ?? "",
        capacityTokens: options.capacityTokens ?? 0,
        idleTimeoutMs: 0,
        protocolVersion: PROTOCOL_VERSION,
        systemPrompt: options.systemPrompt ?? "",
        audioOutput: options.audioOutput ?? false,
      },
      { operation: "open", timeoutMs: this.timeoutMs, signal: options.signal, sessionId: options.sessionId },
    );
    const inputs = response.capabilities?.inputModalities ?? this.capabilities.inputModalities;
    const session = new SglangGrpcSession({
      client: this.client,
      id: response.sessionId,
      positionTokens: response.positionTokens,
      capacityTokens: response.capacityTokens,
      timeoutMs: this.timeoutMs,
      acceptsAudio: inputs.includes(Modality.MODALITY_AUDIO),
      acceptsVideo: inputs.includes(Modality.MODALITY_VIDEO),
      supportsRewind: response.capabilities?.supportsRewind ?? this.capabilities.supportsRewind,
      onClose: (id) => this.sessions.delete(id),
    });
    this.sessions.set(session.id, session);
    return session;
  }

  async health(signal?: AbortSignal): Promise<{ serving: boolean; activeSessions: number }> {
    if (this.disposed) throw new EngineError("unavailable", "engine disposed");
    const response = await unary(this.client.health.bind(this.client), {}, { operation: "health", timeoutMs: this.timeoutMs, signal });
    if (!response.serving) throw new EngineError("unavailable", "sglang-grpc: the engine reports it is not serving");
    return { serving: response.serving, activeSessions: response.activeSessions };
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await Promise.allSettled([...this.sessions.values()].map((s) => s.close()));
    this.client.close();
  }
}

export function createSglangGrpcEngine(options: SglangGrpcEngineOptions): Promise<SglangGrpcEngine> {
  return SglangGrpcEngine.connect(options);
}
