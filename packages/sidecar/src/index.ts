// @microturn/sidecar as a library: start a sidecar in-process (tests,
// embedding), or reach its parts (config, engines) from your own code.
export { startSidecar, type Sidecar, type SidecarOverrides } from "./app.js";
export { loadConfig, ConfigError, SETTINGS, type SidecarConfig, type EngineKind, type BackgroundKind } from "./config.js";
export type { Engine, EngineSession, EngineCapabilities, EngineChunk, EngineOutput, AppendOptions, AppendResult } from "./engines/engine.js";
export { EngineError, type EngineErrorCode } from "./engines/errors.js";
export { SessionFault } from "./errors.js";
