// @microturn/sdk: the app-facing client for microturn interaction sessions.

// --- Interaction client; sessions, events, tools, errors and protocol enums (shared with the browser entry) ---
export { Microturn } from "./client.js";
export type { MicroturnOptions, TlsOptions } from "./core/client-base.js";
export * from "./common-exports.js";

// --- Transports (WebSocket's come with the shared names) ---
export { GrpcTransport, type GrpcTransportOptions } from "./core/grpc-transport.js";

// --- Building blocks ---
export { readSseData, SseLimitError, type ReadSseOptions } from "./core/sse.js";
export { readCapped } from "./core/read-capped.js";

// --- SGLang's own HTTP API, for teams that talk to SGLang directly ---
export * from "./sglang/index.js";
