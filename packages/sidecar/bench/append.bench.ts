// Append latency of a streaming session on the embedded engine (512x8 MoE
// tiny model), at 10 s, 1 min and 10 min of session time, against
//  - raw node-llama-cpp replaying the same calls with the same tokens at the
//    same positions (the engine layer's own overhead), and
//  - a stateless baseline that re-prefills the whole history for a chunk.
// The engine's overhead is its wall time per turn minus the time spent inside
// node-llama-cpp's sequence calls (timed by wrapping them), so attention cost
// and machine noise cancel; the raw replay cross-checks it.
// Prints a table, then one JSON line. Knobs (env): BENCH_CHUNKS (3000),
// BENCH_WINDOW (30 chunks measured before each point), BENCH_WORD_EVERY (5:
// a user word on every 5th chunk, the rest are silence), BENCH_MAX_OUTPUT (2).
import { performance } from "node:perf_hooks";
import type { LlamaContextSequence, Token } from "node-llama-cpp";
import { createEmbeddedEngine } from "../src/engines/embedded/embedded-engine.js";
import type { EmbeddedSession } from "../src/engines/embedded/embedded-session.js";
import { ensureTinyModel } from "../src/engines/embedded/tiny-model.js";
import type { AppendResult, EngineChunk } from "../src/engines/engine.js";

const env = (name: string, fallback: number): number => (process.env[name] ? Number(process.env[name]) : fallback);
const CHUNKS = env("BENCH_CHUNKS", 3000);
const WINDOW = env("BENCH_WINDOW", 30);
const WORD_EVERY = env("BENCH_WORD_EVERY", 5);
const MAX_OUTPUT = env("BENCH_MAX_OUTPUT", 2);
const POINTS = [
  { name: "10s", chunk: 50, baselines: 3 },
  { name: "1min", chunk: 300, baselines: 2 },
  { name: "10min", chunk: 3000, baselines: 1 },
].filter((p) => p.chunk <= CHUNKS);
const WORDS = ["hello", "the", "time", "weather", "today", "please", "what", "yes", "help", "world"];

const quantile = (xs: number[], q: number): number => {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
};
const round = (x: number): number => Math.round(x * 100) / 100;

function chunkAt(i: number): EngineChunk {
  return { seq: i, startMs: i * 200, durationMs: 200, text: (i + 1) % WORD_EVERY === 0 ? WORDS[i % WORDS.length]! : "" };
}

/** Replays a turn with raw sequence calls: the same evaluations and samplings the engine made. */
async function rawTurn(seq: LlamaContextSequence, input: Token[], output: Token[]): Promise<void> {
  const gen = { generateNext: { token: true, options: { temperature: 0 } } } as const;
  if (MAX_OUTPUT === 0) {
    await seq.evaluateWithoutGeneratingNewTokens(input);
    return;
  }
  await seq.controlledEvaluate([...input.slice(0, -1), [input[input.length - 1]!, gen]]);
  for (const [j, token] of output.entries()) {
    if (j === MAX_OUTPUT - 1) await seq.evaluateWithoutGeneratingNewTokens([token]);
    else await seq.controlledEvaluate([[token, gen]]);
  }
}

async function main(): Promise<void> {
  const startedAll = performance.now();
  const modelPath = ensureTinyModel({ size: "bench" });
  const engine = await createEmbeddedEngine({ modelPath, threads: 1, flashAttention: false });
  const perChunk = 12 + MAX_OUTPUT;
  const session = (await engine.openSession({ capacityTokens: CHUNKS * perChunk + 512 })) as EmbeddedSession;
  const seq = session.llamaSequence;
  const model = seq.model;

  let inLlamaMs = 0;
  for (const name of ["controlledEvaluate", "evaluateWithoutGeneratingNewTokens", "eraseContextTokenRanges"] as const) {
    const original = (seq[name] as (...args: unknown[]) => Promise<unknown>).bind(seq);
    Object.defineProperty(seq, name, {
      value: async (...args: unknown[]) => {
        const t0 = performance.now();
        try {
          return await original(...args);
        } finally {
          inLlamaMs += performance.now() - t0;
        }
      },
    });
  }

  const turn = async (i: number): Promise<{ ms: number; overheadMs: number; done: AppendResult; start: number }> => {
    const start = session.positionTokens;
    const llamaBefore = inLlamaMs;
    const t0 = performance.now();
    let done: AppendResult | undefined;
    for await (const out of session.append(chunkAt(i), { maxOutputTokens: MAX_OUTPUT })) if (out.type === "done") done = out.done;
    const ms = performance.now() - t0;
    return { ms, overheadMs: ms - (inLlamaMs - llamaBefore), done: done!, start };
  };
  const erase = (from: number): Promise<void> => seq.eraseContextTokenRanges([{ start: from, end: seq.nextTokenIndex }]);

  type Row = { append: number[]; overhead: number[]; engine: number[]; raw: number[]; diff: number[]; baseline: number[]; position: number; tokens: number[] };
  const rows: Record<string, Row> = {};
  for (const p of POINTS) rows[p.name] = { append: [], overhead: [], engine: [], raw: [], diff: [], baseline: [], position: 0, tokens: [] };

  for (let i = 0; i < CHUNKS; i++) {
    const point = POINTS.find((p) => i >= p.chunk - Math.min(WINDOW, p.chunk) && i < p.chunk);
    const first = await turn(i);
    if ((i + 1) % 250 === 0) process.stderr.write(`[bench:append] chunk ${i + 1}, position ${seq.nextTokenIndex}, ${((performance.now() - startedAll) / 1000).toFixed(0)} s\n`);
    if (!point) continue;
    const row = rows[point.name]!;
    row.append.push(first.ms);
    row.overhead.push(first.overheadMs);
    row.tokens.push(first.done.inputTokens + first.done.outputTokens);
    const turnTokens = seq.contextTokens.slice(first.start);
    const input = turnTokens.slice(0, first.done.inputTokens);
    const output = turnTokens.slice(first.done.inputTokens);
    // Warm pair, order alternating, so neither side always runs on fresher caches.
    let engineMs = 0;
    let rawMs = 0;
    for (const side of i % 2 === 0 ? ["raw", "engine"] : ["engine", "raw"]) {
      await erase(first.start);
      if (side === "engine") engineMs = (await turn(i)).ms;
      else {
        const t0 = performance.now();
        await rawTurn(seq, input, output);
        rawMs = performance.now() - t0;
      }
    }
    if (seq.contextTokens.slice(first.start).join() !== turnTokens.join()) throw new Error(`chunk ${i}: replay diverged`);
    row.engine.push(engineMs);
    row.raw.push(rawMs);
    row.diff.push(engineMs - rawMs);
    row.position = seq.nextTokenIndex;

    if (i >= point.chunk - point.baselines) {
      // Stateless: a fresh sequence prefills everything up to this chunk's input, then the same output.
      const history = seq.contextTokens.slice(0, first.start);
      const context = await model.createContext({ contextSize: seq.nextTokenIndex + 256, threads: 1, flashAttention: false });
      const fresh = context.getSequence();
      const t0 = performance.now();
      await rawTurn(fresh, [...history, ...input], output);
      row.baseline.push(performance.now() - t0);
      await context.dispose();
    }
    if (i === point.chunk - 1) process.stderr.write(`[bench:append] ${point.name} done at chunk ${i + 1}, position ${seq.nextTokenIndex}, ${((performance.now() - startedAll) / 1000).toFixed(0)} s\n`);
  }

  const table = POINTS.map((p) => {
    const r = rows[p.name]!;
    const append50 = quantile(r.append, 0.5);
    const baseline = quantile(r.baseline, 0.5);
    return {
      point: p.name,
      chunks: p.chunk,
      position_tokens: r.position,
      tokens_per_chunk: round(r.tokens.reduce((a, b) => a + b, 0) / r.tokens.length),
      append_p50_ms: round(append50),
      append_p95_ms: round(quantile(r.append, 0.95)),
      raw_p50_ms: round(quantile(r.raw, 0.5)),
      engine_warm_p50_ms: round(quantile(r.engine, 0.5)),
      overhead_p50_ms: round(quantile(r.overhead, 0.5)),
      overhead_p95_ms: round(quantile(r.overhead, 0.95)),
      paired_diff_p50_ms: round(quantile(r.diff, 0.5)),
      reprefill_ms: round(baseline),
      reprefill_speedup: round(baseline / append50),
    };
  });
  console.table(table);
  const at = (name: string) => table.find((t) => t.point === name);
  const last = table[table.length - 1]!;
  console.log(
    JSON.stringify({
      bench: "append",
      model: "tiny-moe-512x8",
      chunks: CHUNKS,
      max_output_tokens: MAX_OUTPUT,
      word_every: WORD_EVERY,
      append_p50_ms_10s: at("10s")?.append_p50_ms,
      append_p95_ms_10s: at("10s")?.append_p95_ms,
      append_p50_ms_1min: at("1min")?.append_p50_ms,
      append_p50_ms_10min: at("10min")?.append_p50_ms,
      append_p95_ms_10min: at("10min")?.append_p95_ms,
      overhead_ms_10s: at("10s")?.overhead_p50_ms,
      overhead_ms_1min: at("1min")?.overhead_p50_ms,
      overhead_ms_10min: at("10min")?.overhead_p50_ms,
      overhead_p95_ms_10s: at("10s")?.overhead_p95_ms,
      overhead_p95_ms_10min: at("10min")?.overhead_p95_ms,
      raw_p50_ms_10s: at("10s")?.raw_p50_ms,
      raw_p50_ms_10min: at("10min")?.raw_p50_ms,
      reprefill_ms_10s: at("10s")?.reprefill_ms,
      reprefill_ms_1min: at("1min")?.reprefill_ms,
      reprefill_ms_10min: at("10min")?.reprefill_ms,
      reprefill_speedup: last.reprefill_speedup,
      reprefill_speedup_point: last.point,
      runtime_s: round((performance.now() - startedAll) / 1000),
    }),
  );
  await engine.dispose();
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
