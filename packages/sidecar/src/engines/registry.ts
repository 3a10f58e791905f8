// Picks the engine adapter named in config. Adapters are imported lazily, so
// the orchestrator never imports one directly and a deployment loads only the
// one it runs (node-llama-cpp stays unloaded when SGLang serves).
import type { Engine } from "./engine.js";
import { EngineError } from "./errors.js";

export type EngineName = "embedded" | "sglang-http" | "sglang-grpc" | "echo";

export interface EngineConfig {
  engine: EngineName;
  /** embedded: GGUF path; empty writes and uses the tiny random-weight model. sglang-*: model id to report. */
  model?: string;
  /** sglang-http: http://host:port; sglang-grpc: host:port (or grpc://host:port). */
  engineUrl?: string;
  /** embedded: llama.cpp threads per session (default 1). */
  threads?: number;
  /** Most sessions the engine holds at once. */
  maxSessions?: number;
  /** Per-request deadline for remote engines, ms. */
  timeoutMs?: number;
}

/** Where the registry reports what it chose; the sidecar's Logger fits. */
export interface EngineLog {
  info(msg: string, fields?: Record<string, unknown>): void;
}

function needUrl(config: EngineConfig): string {
  if (!config.engineUrl) throw new EngineError("invalid_argument", `engine ${config.engine} needs an engine URL (MICROTURN_ENGINE_URL)`);
  return config.engineUrl;
}

/**
 * Engine sessions for a sidecar of `maxSessions`: a rollover opens the next
 * engine session before it closes the full one, so a full sidecar keeps a few
 * to spare for it.
 */
export function engineSessionSlots(maxSessions: number): number {
  return maxSessions + Math.max(2, Math.ceil(maxSessions / 16));
}

export async function createEngine(config: EngineConfig, log?: EngineLog): Promise<Engine> {
  switch (config.engine) {
    case "embedded": {
      const { createEmbeddedEngine, ensureTinyModel } = await import("./embedded/index.js");
      const modelPath = config.model || ensureTinyModel();
      if (!config.model) log?.info("no MICROTURN_MODEL given: using the tiny random-weight model", { modelPath });
      return createEmbeddedEngine({
        modelPath,
        ...(config.threads === undefined ? {} : { threads: config.threads }),
        ...(config.maxSessions === undefined ? {} : { maxSessions: engineSessionSlots(config.maxSessions) }),
      });
    }
    case "sglang-http": {
      const { createSglangHttpEngine } = await import("./sglang-http/index.js");
      return createSglangHttpEngine({
        url: needUrl(config),
        ...(config.model ? { model: config.model } : {}),
        ...(config.timeoutMs === undefined ? {} : { timeoutMs: config.timeoutMs }),
      });
    }
    case "sglang-grpc": {
      const { createSglangGrpcEngine } = await import("./sglang-grpc/index.js");
      return createSglangGrpcEngine({
        address: needUrl(config),
        ...(config.timeoutMs === undefined ? {} : { timeoutMs: config.timeoutMs }),
      });
    }
    case "echo": {
      const { createEchoEngine } = await import("./echo/index.js");
      return createEchoEngine({ ...(config.maxSessions === undefined ? {} : { maxSessions: engineSessionSlots(config.maxSessions) }) });
    }
    default:
      throw new EngineError("invalid_argument", `unknown engine ${JSON.stringify((config as { engine: unknown }).engine)}`);
  }
}
