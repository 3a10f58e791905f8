// The default engine: llama.cpp in-process. One model loaded once; each
// session gets its own LlamaContext (own KV cache, sized to the session's
// capacity). Measured against one shared context with N sequences on 2 cores:
// same single-session latency, ~25% faster when sessions append concurrently
// (separate decodes run in parallel instead of being batched on one thread),
// and a session's capacity can differ from the others'. See docs/engines.md.
import { randomUUID } from "node:crypto";
import { Modality } from "@microturn/protocol";
import type { LlamaModel } from "node-llama-cpp";
import type { BackgroundClient } from "../../background/client.js";
import type { Engine, EngineCapabilities, EngineSession, OpenSessionOptions } from "../engine.js";
import { EngineError } from "../errors.js";
import { EmbeddedBackgroundClient } from "./background-client.js";
import { EmbeddedSession } from "./embedded-session.js";
import { loadGgufModel } from "./load-model.js";

export interface EmbeddedEngineOptions {
  /** Path to a GGUF model (the sidecar passes MICROTURN_MODEL). */
  modelPath: string;
  /** llama.cpp threads per session; 1 is fastest and steadiest on small machines. */
  threads?: number;
  /** Flash attention grows slower with history on GPUs, faster on small CPUs: off by default. */
  flashAttention?: boolean;
  /** KV capacity of a session that asks for none, in tokens. */
  defaultCapacityTokens?: number;
  /** Most sessions open at once; a further open fails with `unavailable`. */
  maxSessions?: number;
  /** Offload to a GPU when node-llama-cpp has a GPU build; off (CPU) by default. */
  gpu?: boolean;
  /** Seed for temperature sampling; unset, sampling is seeded from the clock. */
  seed?: number;
}

const MIN_CAPACITY_TOKENS = 256;
/** Tokens a session keeps for the conversation past its system prompt, at least (a few chunks' worth). */
const MIN_CONVERSATION_TOKENS = 64;
/** llama.cpp sizes contexts in steps of this many cells. */
const CONTEXT_STEP_TOKENS = 256;

export class EmbeddedEngine implements Engine {
  readonly capabilities: EngineCapabilities;
  private readonly sessions = new Map<string, EmbeddedSession>();
  private disposed = false;

  private constructor(
    private readonly model: LlamaModel,
    private readonly options: Required<Omit<EmbeddedEngineOptions, "seed">> & { seed?: number },
    randomWeights: boolean,
  ) {
    this.capabilities = {
      engine: "embedded",
      modelId: options.modelPath,
      inputModalities: [Modality.MODALITY_TEXT],
      outputModalities: [Modality.MODALITY_TEXT],
      supportsRewind: true,
      forcedToolCalls: true,
      maxContextTokens: model.trainContextSize,
      randomWeights,
    };
  }

  static async create(options: EmbeddedEngineOptions): Promise<EmbeddedEngine> {
    if (!options.modelPath) throw new EngineError("invalid_model", "no model path given (set MICROTURN_MODEL)");
    const { model, randomWeights } = await loadGgufModel(options.modelPath, options.gpu ?? false);
    const resolved = {
      modelPath: options.modelPath,
      threads: options.threads ?? 1,
      flashAttention: options.flashAttention ?? false,
      defaultCapacityTokens: Math.min(options.defaultCapacityTokens ?? 4096, model.trainContextSize),
      maxSessions: options.maxSessions ?? 64,
      gpu: options.gpu ?? false,
      ...(options.seed === undefined ? {} : { seed: options.seed }),
    };
    return new EmbeddedEngine(model, resolved, randomWeights);
  }

  async openSession(options: OpenSessionOptions = {}): Promise<EngineSession> {
    if (this.disposed) throw new EngineError("unavailable", "engine disposed");
    if (options.signal?.aborted) throw new EngineError("aborted", "open aborted");
    if (options.audioOutput) throw new EngineError("unsupported_modality", "the embedded engine produces text only; it cannot speak");
    if (this.sessions.size >= this.options.maxSessions) {
      throw new EngineError("unavailable", `session limit reached (${this.options.maxSessions} open)`);
    }
    const id = options.sessionId || randomUUID();
    if (this.sessions.has(id)) throw new EngineError("invalid_argument", `session ${id} is already open`, { sessionId: id });
    const requested = options.capacityTokens ?? this.options.defaultCapacityTokens;
    if (!Number.isInteger(requested) || requested <= 0) {
      throw new EngineError("invalid_argument", `capacityTokens must be a positive integer, got ${requested}`);
    }
    if (requested > this.capabilities.maxContextTokens) {
      throw new EngineError("too_large", `capacity ${requested} exceeds the model's ${this.capabilities.maxContextTokens} tokens`);
    }
    const opening = [this.model.tokens.bos, ...this.model.tokenize(options.systemPrompt ?? "", false)].filter(
      (t): t is NonNullable<typeof t> => t != null,
    );
    // Room for the conversation past the system prompt, whatever was asked: a session that holds only its prompt
    // could take no chunk (and a rollover would open the same one again).
    const needed = opening.length + MIN_CONVERSATION_TOKENS;
    const asked = Math.max(MIN_CAPACITY_TOKENS, requested);
    const capacityTokens = asked >= needed ? asked : Math.ceil(needed / CONTEXT_STEP_TOKENS) * CONTEXT_STEP_TOKENS;
    if (capacityTokens > this.capabilities.maxContextTokens) {
      throw new EngineError(
        "too_large",
        `the system prompt (${opening.length} tokens) leaves less than ${MIN_CONVERSATION_TOKENS} of the model's ${this.capabilities.maxContextTokens} tokens for the conversation`,
      );
    }
    // llama.cpp keeps one cell of a context free, so the session holds one token less (EmbeddedSession.capacityTokens);
    // asking for one more cell would round the context up to the next 256 and cost that much KV memory.
    const contextSize = capacityTokens;
    let context;
    try {
      context = await this.model.createContext({
        contextSize,
        sequences: 1,
        threads: this.options.threads,
        flashAttention: this.options.flashAttention,
      });
    } catch (cause) {
      throw new EngineError("unavailable", `could not allocate a ${contextSize}-token context: ${(cause as Error).message}`, { cause });
    }
    // The slot is taken only now; another open may have raced us to the limit.
    if (this.disposed || this.sessions.size >= this.options.maxSessions || this.sessions.has(id)) {
      await context.dispose();
      if (this.sessions.has(id)) throw new EngineError("invalid_argument", `session ${id} is already open`, { sessionId: id });
      throw new EngineError("unavailable", "engine disposed or session limit reached while opening");
    }
    const session = new EmbeddedSession({
      id,
      model: this.model,
      context,
      startTokens: opening.length,
      capacityTokens,
      ...(this.options.seed === undefined ? {} : { seed: this.options.seed }),
      onClose: (closedId) => this.sessions.delete(closedId),
    });
    this.sessions.set(id, session);
    try {
      await session.prime(opening);
    } catch (cause) {
      await session.close();
      throw new EngineError("internal", `could not evaluate the session's opening tokens: ${(cause as Error).message}`, { cause });
    }
    return session;
  }

  /** A session by id, or EngineError("unknown_session"). */
  session(id: string): EmbeddedSession {
    const session = this.sessions.get(id);
    if (!session) throw new EngineError("unknown_session", `no open session ${id}`, { sessionId: id });
    return session;
  }

  async health(): Promise<{ serving: boolean; activeSessions: number }> {
    if (this.disposed) throw new EngineError("unavailable", "engine disposed");
    return { serving: true, activeSessions: this.sessions.size };
  }

  /** The background role from the same loaded model (`--background embedded`). */
  async createBackgroundClient(): Promise<BackgroundClient> {
    if (this.disposed) throw new EngineError("unavailable", "engine disposed");
    return new EmbeddedBackgroundClient(this.model, {
      threads: this.options.threads,
      contextTokens: Math.min(4096, this.model.trainContextSize),
      defaultMaxTokens: 128,
      ...(this.options.seed === undefined ? {} : { seed: this.options.seed }),
    });
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await Promise.all([...this.sessions.values()].map((s) => s.close()));
    await this.model.dispose();
  }
}

export function createEmbeddedEngine(options: EmbeddedEngineOptions): Promise<EmbeddedEngine> {
  return EmbeddedEngine.create(options);
}
