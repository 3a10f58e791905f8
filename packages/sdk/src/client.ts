// The Node client: gRPC for grpc://, grpcs:// and host:port URLs, WebSocket for ws(s)://.
import { credentials, type ChannelCredentials } from "@grpc/grpc-js";
import { MicroturnClientBase, type MicroturnOptions, type TlsOptions } from "./core/client-base.js";
import { GrpcTransport } from "./core/grpc-transport.js";
import { InvalidInputError } from "./core/session-errors.js";
import { WebSocketTransport } from "./core/websocket-transport.js";

const pem = (value: string | Uint8Array | undefined): Buffer | null => (value === undefined ? null : Buffer.from(value));

function tlsCredentials(tls: TlsOptions) {
  if ((tls.cert === undefined) !== (tls.key === undefined)) {
    throw new InvalidInputError("tls.cert and tls.key go together: a client certificate needs its key");
  }
  return credentials.createSsl(pem(tls.ca), pem(tls.key), pem(tls.cert));
}

export class Microturn extends MicroturnClientBase {
  constructor(options: MicroturnOptions = {}) {
    let tlsCreds: ChannelCredentials | undefined;
    super(options, (endpoint, opts) =>
      endpoint.kind === "grpc"
        ? new GrpcTransport({ address: endpoint.address, tls: endpoint.tls, apiKey: opts.apiKey, ...(tlsCreds ? { credentials: tlsCreds } : {}) })
        : new WebSocketTransport({ url: endpoint.url, apiKey: opts.apiKey, WebSocket: opts.WebSocket }),
    );
    if (options.tls && !options.transport) {
      if (this.endpoint.kind !== "grpc" || !this.endpoint.tls) {
        throw new InvalidInputError(
          `the tls option is for a grpcs:// URL, not ${this.url}${this.endpoint.kind === "websocket" ? " (for wss:// in Node, trust a private CA with NODE_EXTRA_CA_CERTS)" : ""}`,
        );
      }
      tlsCreds = tlsCredentials(options.tls);
    }
  }
}
