// SGLang's native HTTP API: client, streaming sessions, wire types.
export {
  SglangClient,
  SGLANG_ROUTING_HEADER,
  type SglangClientOptions,
  type CallOptions,
  type GenerateResult,
  type GenerateDelta,
  type OpenSessionOptions,
} from "./client.js";
export { StreamingSession, type StreamingSessionOptions, type AppendOptions } from "./streaming-session.js";
export type { StreamTextMode } from "./deltas.js";
export type * from "./types.js";
