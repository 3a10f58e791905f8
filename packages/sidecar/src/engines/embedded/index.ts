// The embedded (in-process llama.cpp) engine and the tiny test models it runs by default.
export { EmbeddedEngine, createEmbeddedEngine, type EmbeddedEngineOptions } from "./embedded-engine.js";
export { EmbeddedSession } from "./embedded-session.js";
export {
  ensureTinyModel,
  writeTinyModel,
  resolveTinyModelConfig,
  TINY_MODEL_PRESETS,
  type EnsureTinyModelOptions,
  type TinyModelConfig,
  type TinyModelSize,
} from "./tiny-model.js";
