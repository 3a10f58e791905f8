// Converse over gRPC (Node only: imports grpc-js). The API key travels as
// `authorization: Bearer <key>` metadata.
import { credentials, type ChannelCredentials, type ChannelOptions, Metadata, type ServiceError } from "@grpc/grpc-js";
import { InteractionClient, type ClientEvent, type ServerEvent } from "@microturn/protocol";
import { errorFromGrpcStatus } from "./grpc-error.js";
import type { Transport, TransportHandlers, TransportStream } from "./transport.js";

export interface GrpcTransportOptions {
  /** `host:port` of the sidecar. */
  address: string;
  apiKey?: string;
  /** TLS when true; plaintext (loopback, sidecar behind a proxy) otherwise. */
  tls?: boolean;
  credentials?: ChannelCredentials;
  channelOptions?: ChannelOptions;
}

/**
 * Pings after 20 s without a frame, and the stream fails when no answer comes
 * in 10 s: a sidecar that vanished without closing the socket is noticed, and
 * the session resumes elsewhere, while the sidecar still keeps what it sent.
 */
const KEEPALIVE: ChannelOptions = { "grpc.keepalive_time_ms": 20_000, "grpc.keepalive_timeout_ms": 10_000 };

/**
 * Each transport keeps its own connections: grpc-js otherwise shares one
 * connection among channels to the same address, and a renewed channel would
 * come back to the server that said GoAway.
 */
const OWN_CONNECTIONS: ChannelOptions = { "grpc.use_local_subchannel_pool": 1 };

export class GrpcTransport implements Transport {
  private client: InteractionClient;
  private readonly apiKey: string | undefined;
  private readonly connect: () => InteractionClient;

  constructor(options: GrpcTransportOptions) {
    const creds = options.credentials ?? (options.tls ? credentials.createSsl() : credentials.createInsecure());
    this.connect = () => new InteractionClient(options.address, creds, { ...KEEPALIVE, ...OWN_CONNECTIONS, ...options.channelOptions });
    this.client = this.connect();
    this.apiKey = options.apiKey;
  }

  /** A new channel for the next stream; the old one closes once its calls are done. */
  renew(): void {
    const old = this.client;
    this.client = this.connect();
    old.close();
  }

  open(handlers: TransportHandlers): TransportStream {
    const metadata = new Metadata();
    if (this.apiKey) metadata.set("authorization", `Bearer ${this.apiKey}`);
    const call = this.client.converse(metadata);
    let finished = false;
    const finish = (error?: ServiceError): void => {
      if (finished) return;
      finished = true;
      handlers.onClose(error === undefined ? undefined : errorFromGrpcStatus(error, { cause: error }));
    };
    call.on("data", (event: ServerEvent) => {
      if (!finished) handlers.onEvent(event);
    });
    call.on("error", (error: ServiceError) => finish(error));
    call.on("status", (status: { code: number }) => {
      if (status.code === 0) finish();
    });
    return {
      send(event: ClientEvent): void {
        if (!finished && call.writable) call.write(event);
      },
      end(): void {
        if (!finished && call.writable) call.end();
      },
      cancel(): void {
        finished = true;
        call.cancel();
      },
    };
  }

  close(): void {
    this.client.close();
  }
}
