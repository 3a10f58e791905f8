// The one interface the orchestrator knows: a streaming-session engine. Each
// adapter (embedded llama.cpp, SGLang over HTTP, patched SGLang over gRPC)
// lives in its own folder and is picked by the registry from config.
import type { ContextItem, DmelAudio, FinishReason, Modality, VideoPatches } from "@microturn/protocol";
import type { BackgroundClient } from "../background/client.js";

/** What an engine can do. */
export interface EngineCapabilities {
  /** Adapter name: "embedded", "sglang-http", "sglang-grpc". */
  readonly engine: string;
  /** Model as the engine knows it (path, name). */
  readonly modelId: string;
  readonly inputModalities: readonly Modality[];
  readonly outputModalities: readonly Modality[];
  readonly supportsRewind: boolean;
  /** Longest sequence one session can hold, in tokens. */
  readonly maxContextTokens: number;
  /** True for a random-weight test model whose output is noise. */
  readonly randomWeights: boolean;
  /** True when the engine honours AppendOptions.forceTool (InputChunk.tool_choice). */
  readonly forcedToolCalls?: boolean;
}

export interface OpenSessionOptions {
  /** Tokens of KV to reserve up front; engines may round or ignore it. */
  capacityTokens?: number;
  /** Instructions placed at the start of the sequence. */
  systemPrompt?: string;
  /** Caller-chosen id; engines that choose their own may ignore it. */
  sessionId?: string;
  /**
   * Speak: deltas carry audio (`audioPcm16`) with their text. Only for engines
   * whose capabilities list MODALITY_AUDIO among the output modalities; others
   * refuse it with `unsupported_modality`.
   */
  audioOutput?: boolean;
  signal?: AbortSignal;
}

/** One micro-turn's input. Everything is appended; nothing is recomputed. */
export interface EngineChunk {
  seq: number;
  startMs: number;
  durationMs: number;
  text?: string;
  audio?: DmelAudio;
  video?: VideoPatches[];
  /** Background and tool results delivered at this boundary, before the input. */
  context?: ContextItem[];
}

export interface AppendOptions {
  /** Output budget of this micro-turn in tokens; 0 appends input only. */
  maxOutputTokens: number;
  stop?: string[];
  /** 0 is greedy. */
  temperature?: number;
  /**
   * The model must call this tool in this turn: the engine emits the call in
   * the documented tool-call markup (tools/parser.ts), with arguments generated
   * under `parametersJson` (a JSON schema), beyond `maxOutputTokens`. Engines
   * that cannot constrain decoding throw EngineError("invalid_argument").
   */
  forceTool?: { name: string; parametersJson: string };
  signal?: AbortSignal;
}

/** Output of a micro-turn, streamed as produced (incremental). */
export type EngineOutput =
  | { type: "delta"; text: string; audioPcm16?: Uint8Array; audioSampleRateHz?: number; positionTokens: number }
  | { type: "done"; done: AppendResult };

export interface AppendResult {
  finishReason: FinishReason;
  /** Sequence length in tokens after the micro-turn. */
  positionTokens: number;
  /** Sequence length after the input, before output. */
  inputEndTokens: number;
  inputTokens: number;
  outputTokens: number;
  /** Time to evaluate the appended input, ms. */
  appendMs: number;
  /** Whole micro-turn, ms. */
  turnMs: number;
}

export interface EngineSessionStats {
  positionTokens: number;
  appends: number;
  lastAppendMs: number;
  capacityTokens: number;
}

/** One persistent sequence. At most one append in flight. */
export interface EngineSession {
  readonly id: string;
  /** Sequence length in tokens now. */
  readonly positionTokens: number;
  /** Appends the chunk, then generates at most one micro-turn of output. The last item is always `done`. */
  append(chunk: EngineChunk, options: AppendOptions): AsyncIterable<EngineOutput>;
  /** Keeps the first `positionTokens` tokens and drops the rest. Returns the new length. */
  rewind(positionTokens: number, signal?: AbortSignal): Promise<number>;
  close(): Promise<void>;
  stats(): EngineSessionStats;
}

export interface Engine {
  readonly capabilities: EngineCapabilities;
  openSession(options?: OpenSessionOptions): Promise<EngineSession>;
  /** Resolves when the engine can serve; rejects with an EngineError otherwise. */
  health(signal?: AbortSignal): Promise<{ serving: boolean; activeSessions: number }>;
  /** Closes every session and releases the model or connections. */
  dispose(): Promise<void>;
  /**
   * Engines that hold a model in-process can also serve the background role
   * from it (`--background embedded`); network engines leave this out.
   */
  createBackgroundClient?(): Promise<BackgroundClient>;
}
