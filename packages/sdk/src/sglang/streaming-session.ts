// A streaming session of SGLang (--enable-streaming-session): one persistent,
// append-only sequence whose KV the server keeps between requests. Each
// append adds input after the previous output and streams one micro-turn.
// SGLang allows one request in flight per session; this guard says so before
// the request leaves, instead of an abort from the server.
import { MicroturnError, SessionBusyError } from "../core/error.js";
import type { CallOptions, GenerateDelta, OpenSessionOptions, SglangClient } from "./client.js";
import type { SglangMetaInfo, SglangSamplingParams } from "./types.js";

export type StreamingSessionOptions = Omit<OpenSessionOptions, "streaming">;

export interface AppendOptions extends Omit<CallOptions, "routingKey"> {
  /** Request id (SGLang `rid`), also sent as `session_params.rid`. */
  rid?: string;
}

export class StreamingSession {
  readonly id: string;
  private readonly client: SglangClient;
  private inFlight = false;
  private closed = false;
  private position = 0;
  private lastMeta: SglangMetaInfo | undefined;

  constructor(client: SglangClient, id: string) {
    this.client = client;
    this.id = id;
  }

  /** True while an append is streaming. */
  get busy(): boolean {
    return this.inFlight;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * Tokens in the server's sequence after the last finished append
   * (`prompt_tokens + completion_tokens`). An aborted append leaves it unchanged:
   * SGLang rolls the session back to its last finished request.
   */
  get positionTokens(): number {
    return this.position;
  }

  /** meta_info of the last finished append. */
  get lastMetaInfo(): SglangMetaInfo | undefined {
    return this.lastMeta;
  }

  /**
   * Appends text or token ids and streams the output generated after them.
   * The guard applies when iteration starts; a second concurrent append fails
   * with SessionBusyError without reaching the server.
   */
  async *append(
    input: string | readonly number[],
    sampling: SglangSamplingParams = {},
    options: AppendOptions = {},
  ): AsyncGenerator<GenerateDelta, void, undefined> {
    if (this.closed) throw new MicroturnError(`Streaming session ${this.id} is closed.`);
    if (this.inFlight) {
      throw new SessionBusyError(`Streaming session ${this.id} already has an append in flight.`, { sessionId: this.id });
    }
    this.inFlight = true;
    try {
      const stream = this.client.generateStream(
        {
          ...(typeof input === "string" ? { text: input } : { input_ids: [...input] }),
          sampling_params: sampling,
          session_params: { id: this.id, ...(options.rid ? { rid: options.rid } : {}) },
          ...(options.rid ? { rid: options.rid } : {}),
        },
        options,
      );
      for await (const delta of stream) {
        if (delta.finishReason) {
          this.lastMeta = delta.metaInfo;
          this.position = delta.metaInfo.prompt_tokens + delta.metaInfo.completion_tokens;
        }
        yield delta;
      }
    } finally {
      this.inFlight = false;
    }
  }

  /** Closes the session on the server. Idempotent. */
  async close(options: CallOptions = {}): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.client.closeSession(this.id, options);
  }
}
