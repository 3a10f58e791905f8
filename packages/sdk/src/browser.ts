// @microturn/sdk/browser: the same session API over WebSocket, without grpc-js.
import { MicroturnClientBase, type MicroturnOptions } from "./core/client-base.js";
import { InvalidInputError } from "./core/session-errors.js";
import { WebSocketTransport } from "./core/websocket-transport.js";

export class Microturn extends MicroturnClientBase {
  constructor(options: MicroturnOptions = {}) {
    super(options, (endpoint, opts) => {
      if (endpoint.kind !== "websocket") {
        throw new InvalidInputError("the browser client speaks WebSocket only: use a ws:// or wss:// MICROTURN_URL");
      }
      return new WebSocketTransport({ url: endpoint.url, apiKey: opts.apiKey, WebSocket: opts.WebSocket });
    });
    if (options.tls) throw new InvalidInputError("the tls option is for Node (grpcs://, or wss:// through the ws package): a browser trusts its own certificate store");
  }
}

export type { MicroturnOptions } from "./core/client-base.js";
export {
  InteractionSession,
  type ChunkParts,
  type DelegateOptions,
  type SessionConfigInput,
  type SessionOptions,
  type SessionTools,
} from "./core/session.js";
export type { OutputAudio, SessionEvent, SessionEventName, SessionEvents } from "./core/session-events.js";
export { BackgroundTask, BackgroundTaskError } from "./core/background-task.js";
export type { JsonSchema, ToolContext, ToolDefinition, ToolHandler } from "./internal/tool-runner.js";
export type { ReconnectOptions } from "./internal/backoff.js";
export type { Transport, TransportHandlers, TransportStream } from "./core/transport.js";
export { WebSocketTransport, WEBSOCKET_PATH, WEBSOCKET_SUBPROTOCOL, type WebSocketConstructor } from "./core/websocket-transport.js";
export * from "./core/error.js";
export { InvalidInputError, ProtocolVersionError, SessionClosedError } from "./core/session-errors.js";
export { errorFromSessionError, type SessionAPIError } from "./core/grpc-error.js";
