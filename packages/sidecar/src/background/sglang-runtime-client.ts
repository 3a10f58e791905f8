// Background model over SGLang's native gRPC service (sglang.runtime.v1.SglangService,
// what SGLang serves with --grpc-port): its streaming ChatComplete, which takes an
// OpenAI chat-completions request as JSON and streams the same chunks the HTTP
// endpoint would, one per message. The server renders the chat template and
// parses tool calls (start it with --tool-call-parser), as over HTTP.
import { randomUUID } from "node:crypto";
import { credentials as grpcCredentials, Metadata, status as GrpcStatus, type ChannelCredentials, type ServiceError } from "@grpc/grpc-js";
import { SglangServiceClient, type OpenAIStreamChunk } from "../gen/sglang/runtime/sglang_runtime.js";
import { ChatChunkReader, chatCompletionBody } from "./chat-chunks.js";
import type { BackgroundClient, BackgroundDelta, ChatMessage, StreamChatOptions } from "./client.js";
import { BackgroundError } from "./errors.js";
import { backgroundErrorFromGrpc } from "./grpc-errors.js";

export interface SglangRuntimeClientOptions {
  /** host:port of SGLang's gRPC port (--grpc-port), e.g. 127.0.0.1:30001; a grpc:// prefix is taken off. */
  address: string;
  /** Model name sent in each request; SGLang answers with its one served model whatever the name. Default "default". */
  model?: string;
  /** Insecure by default (a sidecar next to its server). */
  credentials?: ChannelCredentials;
  /** Deadline of one whole answer, ms. Default 300000. */
  deadlineMs?: number;
  /** Longest wait for the next chunk of an answer under way, ms (a stalled server). Default 60000. */
  chunkTimeoutMs?: number;
}

/** What an UNIMPLEMENTED answer means here: another service on that port. */
const WRONG_SERVICE_HINT =
  "the server does not serve SGLang's native gRPC service (sglang.runtime.v1, --grpc-port); a server started with --smg-grpc-mode serves the SMG scheduler service instead: use --background sglang-smg-grpc for it";

function mapGrpcError(err: unknown, signal: AbortSignal | undefined, what: string): BackgroundError {
  if (BackgroundError.isInstance(err)) return err;
  const grpcError = err as Partial<ServiceError>;
  if (signal?.aborted !== true) {
    // Not a status at all (the channel failed under the call): worth trying again.
    if (grpcError.code === undefined) return new BackgroundError("unavailable", `${what}: ${String((err as Error)?.message ?? err)}`, { cause: err });
    if (grpcError.code === GrpcStatus.UNIMPLEMENTED) return new BackgroundError("bad_response", `${what}: ${WRONG_SERVICE_HINT}`, { cause: err });
  }
  return backgroundErrorFromGrpc(grpcError, signal, what);
}

export class SglangRuntimeClient implements BackgroundClient {
  readonly model: string;
  private readonly client: SglangServiceClient;
  private readonly address: string;
  private readonly deadlineMs: number;
  private readonly chunkTimeoutMs: number;

  constructor(options: SglangRuntimeClientOptions) {
    this.address = options.address.replace(/^grpc:\/\//, "");
    this.model = options.model ?? "default";
    this.client = new SglangServiceClient(this.address, options.credentials ?? grpcCredentials.createInsecure());
    this.deadlineMs = options.deadlineMs ?? 300_000;
    this.chunkTimeoutMs = options.chunkTimeoutMs ?? 60_000;
  }

  /**
   * Asks the server's HealthCheck. Throws BackgroundError: `bad_response` when
   * the port serves another service (the message says which client fits it),
   * `unavailable` or `timeout` when it cannot be asked now, `unavailable` when
   * it answers that it is not healthy.
   */
  async check(deadlineMs = 10_000): Promise<void> {
    const what = `SGLang gRPC ${this.address}`;
    const healthy = await new Promise<boolean>((resolve, reject) =>
      this.client.healthCheck({}, new Metadata(), { deadline: Date.now() + deadlineMs }, (err, response) =>
        err ? reject(mapGrpcError(err, undefined, what)) : resolve(response.healthy),
      ),
    );
    if (!healthy) throw new BackgroundError("unavailable", `${what} answered that it is not healthy`);
  }

  async *streamChat(messages: ChatMessage[], options: StreamChatOptions = {}): AsyncGenerator<BackgroundDelta> {
    const { signal } = options;
    const what = `SGLang gRPC ${this.address}`;
    if (signal?.aborted === true) throw new BackgroundError("aborted", `${what}: aborted before the request`);
    const body = chatCompletionBody(this.model, messages, options);
    // The request id SGLang logs and aborts by, as over HTTP.
    body.rid = `microturn-bg-${randomUUID()}`;
    const call = this.client.chatComplete({ jsonBody: Buffer.from(JSON.stringify(body)), traceHeaders: {} }, new Metadata(), { deadline: Date.now() + this.deadlineMs });
    const onAbort = () => call.cancel();
    signal?.addEventListener("abort", onAbort, { once: true });
    let stallTimer: NodeJS.Timeout | undefined;
    const armStallTimer = () => {
      clearTimeout(stallTimer);
      stallTimer = setTimeout(() => call.destroy(new BackgroundError("timeout", `${what}: no chunk for ${this.chunkTimeoutMs} ms`)), this.chunkTimeoutMs);
    };
    const reader = new ChatChunkReader(what);
    let finished = false;
    try {
      armStallTimer();
      for await (const chunk of call as AsyncIterable<OpenAIStreamChunk>) {
        armStallTimer();
        const data = chunk.jsonChunk.toString("utf8");
        // SGLang leaves [DONE] out (the empty `finished` chunk ends the answer); were it sent, it ends it too.
        if (data.trim() === "[DONE]") {
          finished = true;
          break;
        }
        if (data !== "" && (yield* reader.read(data))) break;
        if (chunk.finished) {
          finished = true;
          break;
        }
      }
    } catch (err) {
      throw mapGrpcError(err, signal, what);
    } finally {
      clearTimeout(stallTimer);
      signal?.removeEventListener("abort", onAbort);
      // Also reached when the consumer stops early: the server stops generating.
      call.cancel();
    }
    if (!finished && !reader.finished) throw new BackgroundError("unavailable", `${what} ended the stream before the answer finished`);
    yield* reader.end();
  }

  async close(): Promise<void> {
    this.client.close();
  }
}
