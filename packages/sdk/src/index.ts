// @microturn/sdk: the app-facing client for microturn interaction sessions.

// --- Interaction client and sessions ---
export { Microturn } from "./client.js";
export type { MicroturnOptions, TlsOptions } from "./core/client-base.js";
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

// --- Transports ---
export type { Transport, TransportHandlers, TransportStream } from "./core/transport.js";
export { GrpcTransport, type GrpcTransportOptions } from "./core/grpc-transport.js";
export {
  WebSocketTransport,
  WEBSOCKET_PATH,
  WEBSOCKET_SUBPROTOCOL,
  type WebSocketConstructor,
  type WebSocketLike,
  type WebSocketTransportOptions,
} from "./core/websocket-transport.js";

// --- Building blocks ---
export { readSseData, SseLimitError, type ReadSseOptions } from "./core/sse.js";
export { readCapped } from "./core/read-capped.js";

// --- SGLang's own HTTP API, for teams that talk to SGLang directly ---
export * from "./sglang/index.js";

// --- Errors ---
export * from "./core/error.js";
export { InvalidInputError, ProtocolVersionError, SessionClosedError } from "./core/session-errors.js";
export { errorFromGrpcStatus, errorFromSessionError, GrpcCode, type GrpcStatusLike, type SessionAPIError } from "./core/grpc-error.js";

// --- Protocol re-exports apps need for config and event payloads ---
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
