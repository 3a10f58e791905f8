// The Node client: gRPC for grpc://, grpcs:// and host:port URLs, WebSocket for ws(s)://.
import { credentials, type ChannelCredentials } from "@grpc/grpc-js";
import { MicroturnClientBase, type MicroturnOptions } from "./core/client-base.js";
import { GrpcTransport } from "./core/grpc-transport.js";
import { InvalidInputError } from "./core/session-errors.js";
import { WebSocketTransport } from "./core/websocket-transport.js";

const pem = (value: string | Uint8Array | undefined): Buffer | null => (value === undefined ? null : Buffer.from(value));

export class Microturn extends MicroturnClientBase {
  constructor(options: MicroturnOptions = {}) {
    let tlsCreds: ChannelCredentials | undefined;
    super(options, (endpoint, opts) =>
      endpoint.kind === "grpc"
        ? new GrpcTransport({ address: endpoint.address, tls: endpoint.tls, apiKey: opts.apiKey, ...(tlsCreds ? { credentials: tlsCreds } : {}) })
        : new WebSocketTransport({ url: endpoint.url, apiKey: opts.apiKey, WebSocket: opts.WebSocket, ...(opts.tls ? { tls: opts.tls } : {}), ...(opts.ackTimeoutMs !== undefined ? { ackTimeoutMs: opts.ackTimeoutMs } : {}) }),
    );
    if (options.tls && !options.transport) {
      const secure = this.endpoint.kind === "grpc" ? this.endpoint.tls : this.endpoint.url.startsWith("wss:");
      if (!secure) throw new InvalidInputError(`the tls option is for a grpcs:// or wss:// URL, not ${this.url}`);
      if ((options.tls.cert === undefined) !== (options.tls.key === undefined)) {
        throw new InvalidInputError("tls.cert and tls.key go together: a client certificate needs its key");
      }
      if (this.endpoint.kind === "grpc") tlsCreds = credentials.createSsl(pem(options.tls.ca), pem(options.tls.key), pem(options.tls.cert));
    }
  }
}
