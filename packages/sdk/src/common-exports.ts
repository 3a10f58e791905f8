// What both entries export (index.ts for Node, browser.ts over WebSocket):
// sessions, events, tools, errors and the protocol's enums; each adds its own `Microturn`.
export {
  InteractionSession,
  type ChunkParts,
  type DelegateOptions,
  type DeliveryOption,
  type SessionConfigInput,
  type SessionOptions,
  type SessionTools,
} from "./core/session.js";
export type {
  LifecycleEvents,
  OutputAudio,
  ReconnectedInfo,
  ReconnectingInfo,
  ServerEventMeta,
  ServerEvents,
  SessionEvent,
  SessionEventName,
  SessionEvents,
} from "./core/session-events.js";
export { BackgroundTask, BackgroundTaskError } from "./core/background-task.js";
export type { JsonSchema, ToolContext, ToolDefinition, ToolHandler } from "./internal/tool-runner.js";
export type { ReconnectOptions } from "./internal/backoff.js";
export type { Transport, TransportHandlers, TransportStream } from "./core/transport.js";
export {
  WebSocketTransport,
  WEBSOCKET_PATH,
  WEBSOCKET_SUBPROTOCOL,
  type WebSocketConstructor,
  type WebSocketLike,
  type WebSocketTransportOptions,
} from "./core/websocket-transport.js";
export * from "./core/error.js";
export { InvalidInputError, ProtocolVersionError, SessionClosedError } from "./core/session-errors.js";
export { errorFromGrpcStatus, errorFromSessionError, GrpcCode, type GrpcStatusLike, type SessionAPIError } from "./core/grpc-error.js";
export {
  DeliveryMode,
  ErrorCode,
  Modality,
  OutputMode,
  PROTOCOL_VERSION,
  TaskStatus,
  UnsupportedInput,
  type ServerEventName,
  type ServerEventPayload,
} from "@microturn/protocol";
