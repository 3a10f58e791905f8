// @microturn/sdk/browser: the same session API over WebSocket, without grpc-js.
import { MicroturnClientBase, type MicroturnOptions } from "./core/client-base.js";
import { InvalidInputError } from "./core/session-errors.js";
import { WebSocketTransport } from "./core/websocket-transport.js";

const WEBSOCKET_ONLY = "the browser client speaks WebSocket only: use a ws:// or wss:// MICROTURN_URL";

export class Microturn extends MicroturnClientBase {
  constructor(options: MicroturnOptions = {}) {
    super(options, (endpoint, opts) => {
      if (endpoint.kind !== "websocket") throw new InvalidInputError(WEBSOCKET_ONLY);
      return new WebSocketTransport({ url: endpoint.url, apiKey: opts.apiKey, WebSocket: opts.WebSocket, ...(opts.ackTimeoutMs !== undefined ? { ackTimeoutMs: opts.ackTimeoutMs } : {}) });
    });
    // Refused here, not at the first session (a custom transport carries any URL).
    if (!options.transport && this.endpoint.kind !== "websocket") throw new InvalidInputError(WEBSOCKET_ONLY);
    if (options.tls) throw new InvalidInputError("the tls option is for Node (grpcs://, or wss:// through the ws package): a browser trusts its own certificate store");
  }
}

export type { MicroturnOptions } from "./core/client-base.js";
export * from "./common-exports.js";
