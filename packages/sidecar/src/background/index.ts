// Background model: context packages, clients (OpenAI-compatible HTTP, SGLang
// native gRPC) and the per-session task manager.
export { BackgroundError, type BackgroundErrorCode } from "./errors.js";
export type { BackgroundClient, BackgroundDelta, ChatMessage, ChatToolCall, ChatToolSpec, ChatUsage, StreamChatOptions } from "./client.js";
export { buildContextPackage, formatEntry, fitTranscript, DEFAULT_CONTEXT_MAX_CHARS, type ConversationEntry, type ContextPackageOptions } from "./context-package.js";
export { OpenAiChatClient, type OpenAiChatClientOptions } from "./openai-client.js";
export {
  BackgroundManager,
  type BackgroundManagerOptions,
  type BackgroundManagerEvents,
  type BackgroundToolEvent,
  type StartTaskRequest,
} from "./manager.js";
export { SglangGrpcChatClient, fetchSglangTokenizer, type SglangGrpcChatClientOptions } from "./sglang-grpc-client.js";
export { readZipEntries } from "./zip-reader.js";
export { HfChatTokenizer, IncrementalDecoder, type ChatTokenizer, type StreamingDecoder } from "./chat-tokenizer.js";
export { ManagerSessionBackground, toSessionFault } from "./session-background.js";
