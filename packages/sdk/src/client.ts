// The Node client: gRPC for grpc:// and host:port URLs, WebSocket for ws(s)://.
import { MicroturnClientBase, type MicroturnOptions } from "./core/client-base.js";
import { GrpcTransport } from "./core/grpc-transport.js";
import { WebSocketTransport } from "./core/websocket-transport.js";

export class Microturn extends MicroturnClientBase {
  constructor(options: MicroturnOptions = {}) {
    super(options, (endpoint, opts) =>
      endpoint.kind === "grpc"
        ? new GrpcTransport({ address: endpoint.address, tls: endpoint.tls, apiKey: opts.apiKey })
        : new WebSocketTransport({ url: endpoint.url, apiKey: opts.apiKey, WebSocket: opts.WebSocket }),
    );
  }
}
