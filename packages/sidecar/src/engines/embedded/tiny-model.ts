// Deterministic random-weight qwen3moe GGUF models for tests, the default demo
// and benchmarks: nothing can be downloaded, so the project writes its own.
// Same config, same bytes: weights come from a PRNG seeded per tensor name.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeGguf, type GgufTensor, type GgufValue } from "./gguf-writer.js";

export interface TinyModelConfig {
  embeddingLength: number;
  blockCount: number;
  headCount: number;
  headCountKv: number;
  expertCount: number;
  expertUsedCount: number;
  expertFeedForwardLength: number;
  contextLength: number;
  seed: number;
  /**
   * Pushes every turn toward end-of-turn: 0 leaves the model random; a large
   * value (e.g. 50) makes it answer every chunk with immediate end-of-turn,
   * i.e. silence. Lets tests reach the silence path deterministically.
   */
  eosBias: number;
}

export type TinyModelSize = "tiny" | "bench";

export const TINY_MODEL_PRESETS: Readonly<Record<TinyModelSize, TinyModelConfig>> = {
  tiny: {
    embeddingLength: 64, blockCount: 2, headCount: 4, headCountKv: 2, expertCount: 4, expertUsedCount: 2,
    expertFeedForwardLength: 64, contextLength: 131_072, seed: 1, eosBias: 0,
  },
  bench: {
    embeddingLength: 512, blockCount: 8, headCount: 8, headCountKv: 4, expertCount: 4, expertUsedCount: 2,
    expertFeedForwardLength: 512, contextLength: 131_072, seed: 1, eosBias: 0,
  },
};

/** Bump when the bytes written for a given config change, so caches refresh. */
const WRITER_VERSION = 1;

export const BOS_ID = 1;
export const EOS_ID = 2;
const TOKEN_NORMAL = 1;
const TOKEN_UNKNOWN = 2;
const TOKEN_CONTROL = 3;
const TOKEN_BYTE = 6;
const SPACE = "\u2581";

// Words whose prefixes become merged pieces, so common text and the time
// markers take few tokens, as with a real SentencePiece vocabulary.
const WORDS = [
  "<t=", "s>", "[user]", "[background", "[tool", "[system]", "result]", "task-", "call-",
  "the", "and", "you", "that", "what", "time", "hello", "world", "is", "it", "to", "of", "in", "a", "I",
  "can", "help", "with", "this", "weather", "today", "tomorrow", "please", "thanks", "yes", "no", "ok",
];

interface Vocab {
  tokens: string[];
  scores: number[];
  types: number[];
}

function buildVocab(): Vocab {
  const tokens = ["<unk>", "<s>", "</s>"];
  const types = [TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_CONTROL];
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
    types.push(TOKEN_BYTE);
  }
  const pieces = new Set<string>([SPACE]);
  for (let c = 0x21; c < 0x7f; c++) pieces.add(String.fromCharCode(c));
  for (const word of WORDS) {
    for (const form of [word, SPACE + word]) {
      for (let i = 2; i <= form.length; i++) pieces.add(form.slice(0, i));
    }
  }
  for (const piece of pieces) {
    tokens.push(piece);
    types.push(TOKEN_NORMAL);
  }
  // SentencePiece merges the highest-scoring pair first; longer pieces win.
  const scores = tokens.map((t, i) => (types[i] === TOKEN_NORMAL ? [...t].length - i / 1e4 : 0));
  return { tokens, scores, types };
}

/** mulberry32: small, fast, and identical on every platform. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function seedFor(name: string, seed: number): number {
  return createHash("sha256").update(`${seed}:${name}`).digest().readUInt32LE(0);
}

/** Uniform in [-scale, scale); the scale keeps activations near unit size. */
function randomTensor(name: string, dims: number[], seed: number, scale: number): GgufTensor {
  const next = prng(seedFor(name, seed));
  return {
    name,
    dims,
    fill(out) {
      for (let i = 0; i < out.length; i++) out[i] = (next() * 2 - 1) * scale;
    },
  };
}

function constTensor(name: string, dims: number[], value: number): GgufTensor {
  return { name, dims, fill: (out) => out.fill(value) };
}

function tensorsFor(c: TinyModelConfig, vocabSize: number): GgufTensor[] {
  const dim = c.embeddingLength;
  const headDim = dim / c.headCount;
  const kvDim = headDim * c.headCountKv;
  const ff = c.expertFeedForwardLength;
  const n = c.expertCount;
  const w = (fanIn: number): number => Math.sqrt(3 / fanIn);
  const embd = randomTensor("token_embd.weight", [dim, vocabSize], c.seed, 1);
  const output = randomTensor("output.weight", [dim, vocabSize], c.seed, w(dim));
  if (c.eosBias !== 0) {
    // Dimension 0 of every embedding carries a large constant, and the
    // end-of-turn row of the output matrix reads it.
    const fillEmbd = embd.fill;
    embd.fill = (out, offset) => {
      fillEmbd(out, offset);
      for (let i = (dim - (offset % dim)) % dim; i < out.length; i += dim) out[i] = c.eosBias;
    };
    const fillOut = output.fill;
    output.fill = (out, offset) => {
      fillOut(out, offset);
      const at = EOS_ID * dim - offset;
      if (at >= 0 && at < out.length) out[at] = c.eosBias;
    };
  }
  const tensors: GgufTensor[] = [embd, constTensor("output_norm.weight", [dim], 1), output];
  for (let l = 0; l < c.blockCount; l++) {
    const p = `blk.${l}.`;
    tensors.push(
      constTensor(`${p}attn_norm.weight`, [dim], 1),
      randomTensor(`${p}attn_q.weight`, [dim, dim], c.seed, w(dim)),
      randomTensor(`${p}attn_k.weight`, [dim, kvDim], c.seed, w(dim)),
      randomTensor(`${p}attn_v.weight`, [dim, kvDim], c.seed, w(dim)),
      randomTensor(`${p}attn_output.weight`, [dim, dim], c.seed, w(dim)),
      constTensor(`${p}attn_q_norm.weight`, [headDim], 1),
      constTensor(`${p}attn_k_norm.weight`, [headDim], 1),
      constTensor(`${p}ffn_norm.weight`, [dim], 1),
      randomTensor(`${p}ffn_gate_inp.weight`, [dim, n], c.seed, w(dim)),
      randomTensor(`${p}ffn_gate_exps.weight`, [dim, ff, n], c.seed, w(dim)),
      randomTensor(`${p}ffn_down_exps.weight`, [ff, dim, n], c.seed, w(ff)),
      randomTensor(`${p}ffn_up_exps.weight`, [dim, ff, n], c.seed, w(dim)),
    );
  }
  return tensors;
}

function metadataFor(c: TinyModelConfig, name: string, vocab: Vocab): Map<string, GgufValue> {
  const a = "qwen3moe";
  const u32 = (value: number): GgufValue => ({ type: "u32", value });
  return new Map<string, GgufValue>([
    ["general.architecture", { type: "string", value: a }],
    ["general.name", { type: "string", value: name }],
    // Read by the embedded engine to report `randomWeights` in its capabilities.
    ["general.tags", { type: "string[]", value: ["microturn-random-weights"] }],
    [`${a}.context_length`, u32(c.contextLength)],
    [`${a}.embedding_length`, u32(c.embeddingLength)],
    [`${a}.block_count`, u32(c.blockCount)],
    [`${a}.feed_forward_length`, u32(c.expertFeedForwardLength)],
    [`${a}.expert_feed_forward_length`, u32(c.expertFeedForwardLength)],
    [`${a}.attention.head_count`, u32(c.headCount)],
    [`${a}.attention.head_count_kv`, u32(c.headCountKv)],
    [`${a}.attention.layer_norm_rms_epsilon`, { type: "f32", value: 1e-6 }],
    [`${a}.rope.freq_base`, { type: "f32", value: 1_000_000 }],
    [`${a}.expert_count`, u32(c.expertCount)],
    [`${a}.expert_used_count`, u32(c.expertUsedCount)],
    ["tokenizer.ggml.model", { type: "string", value: "llama" }],
    ["tokenizer.ggml.tokens", { type: "string[]", value: vocab.tokens }],
    ["tokenizer.ggml.scores", { type: "f32[]", value: vocab.scores }],
    ["tokenizer.ggml.token_type", { type: "i32[]", value: vocab.types }],
    ["tokenizer.ggml.unknown_token_id", u32(0)],
    ["tokenizer.ggml.bos_token_id", u32(BOS_ID)],
    ["tokenizer.ggml.eos_token_id", u32(EOS_ID)],
    ["tokenizer.ggml.add_bos_token", { type: "bool", value: true }],
    ["tokenizer.ggml.add_space_prefix", { type: "bool", value: false }],
  ]);
}

export function resolveTinyModelConfig(size: TinyModelSize | Partial<TinyModelConfig> = "tiny"): TinyModelConfig {
  if (typeof size === "string") return TINY_MODEL_PRESETS[size];
  return { ...TINY_MODEL_PRESETS.tiny, ...size };
}

/** Writes the model for `config` to `path` (overwriting); returns the size in bytes. */
export function writeTinyModel(path: string, config: TinyModelConfig): number {
  if (config.embeddingLength % config.headCount !== 0 || config.headCount % config.headCountKv !== 0) {
    throw new RangeError("embeddingLength must divide by headCount, and headCount by headCountKv");
  }
  const vocab = buildVocab();
  const name = `microturn-tiny-${config.embeddingLength}x${config.blockCount}`;
  return writeGguf(path, metadataFor(config, name, vocab), tensorsFor(config, vocab.tokens.length));
}

export interface EnsureTinyModelOptions {
  /** Cache folder; defaults to $MICROTURN_MODEL_DIR, then <os tmpdir>/microturn-models. */
  dir?: string;
  /** A preset name or overrides of the tiny preset. */
  size?: TinyModelSize | Partial<TinyModelConfig>;
}

/** Writes the model once into the cache folder and returns its path; later calls reuse the file. */
export function ensureTinyModel(options: EnsureTinyModelOptions = {}): string {
  const config = resolveTinyModelConfig(options.size);
  const dir = options.dir ?? process.env.MICROTURN_MODEL_DIR ?? join(tmpdir(), "microturn-models");
  const key = createHash("sha256").update(JSON.stringify({ v: WRITER_VERSION, ...config })).digest("hex").slice(0, 12);
  const path = join(dir, `microturn-tiny-${config.embeddingLength}x${config.blockCount}-${key}.gguf`);
  if (existsSync(path)) return path;
  mkdirSync(dir, { recursive: true });
  // Write beside, then rename: parallel test workers never see half a file.
  const partial = `${path}.${process.pid}.${Date.now()}.partial`;
  try {
    writeTinyModel(partial, config);
    renameSync(partial, path);
  } finally {
    rmSync(partial, { force: true });
  }
  return path;
}
