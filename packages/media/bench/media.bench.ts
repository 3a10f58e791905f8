// `npm run bench:media`: per-chunk cost of the media work the SDK does for
// every 200 ms of input — streaming dMel of 200 ms of 16 kHz audio plus
// patchify of one 640x480 RGB frame — against a numpy version of the same
// steps (media_bench_numpy.py, spawned in the same run). Prints a table, then
// one JSON line. Options: --chunks N (default 1000), --warmup N (default 100).

import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { CHUNK_MS, DmelEncoder, Patchifier, patchify } from "../src/index.js";

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

const CHUNKS = arg("chunks", 1000);
const WARMUP = arg("warmup", 100);

function percentile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const pos = (q / 100) * (sorted.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return (sorted[lo] as number) + ((sorted[hi] as number) - (sorted[lo] as number)) * (pos - lo);
}

function signal(samples: number, rate: number): Float32Array {
  let s = 12345;
  const out = new Float32Array(samples);
  for (let i = 0; i < samples; i++) {
    s = (s * 1103515245 + 12345) % 2147483648;
    const t = i / rate;
    out[i] = 0.3 * Math.sin(2 * Math.PI * (180 + 40 * Math.sin(3 * t)) * t) + 0.05 * (s / 2147483648 - 0.5);
  }
  return out;
}

interface Row {
  name: string;
  samples: number[];
}

type VideoPath = "none" | "patchify" | "patchifier";

function measure(rate: number, video: VideoPath): { dmel: number[]; patch: number[]; total: number[] } {
  const perChunk = (rate * CHUNK_MS) / 1000;
  const audio = signal(perChunk * 50, rate);
  const frames = Array.from({ length: 4 }, (_, f) => Uint8Array.from({ length: 640 * 480 * 3 }, (_, i) => (i * 7 + f * 13) & 255));
  const encoder = new DmelEncoder({ sampleRate: rate });
  const plan = new Patchifier(640, 480);
  const dmel: number[] = [];
  const patch: number[] = [];
  const total: number[] = [];
  for (let i = 0; i < WARMUP + CHUNKS; i++) {
    const c = i % 50;
    const chunk = audio.subarray(c * perChunk, (c + 1) * perChunk);
    const t0 = performance.now();
    const codes = encoder.push(chunk);
    const t1 = performance.now();
    const frame = frames[i % 4] as Uint8Array;
    const patches =
      video === "patchify" ? patchify(frame, 640, 480).patches : video === "patchifier" ? plan.patchify(frame) : null;
    const t2 = performance.now();
    if (rate === 16000 && codes.length !== 16 * 80) throw new Error(`expected 16 frames, got ${codes.length / 80}`);
    if (patches !== null && patches.length !== 640 * 480 * 3) throw new Error("expected 12 x 16 patches of 40x40");
    if (i >= WARMUP) {
      dmel.push(t1 - t0);
      patch.push(t2 - t1);
      total.push(t2 - t0);
    }
  }
  return { dmel, patch, total };
}

function runNumpy(): { total_p50: number; total_p95: number; dmel_p50: number; dmel_p95: number; patch_p50: number; patch_p95: number; numpy: string } | null {
  const script = fileURLToPath(new URL("./media_bench_numpy.py", import.meta.url));
  // One BLAS thread: the per-chunk matrices are tiny and our encoder is single-threaded too.
  const env = { ...process.env, OPENBLAS_NUM_THREADS: "1", OMP_NUM_THREADS: "1", MKL_NUM_THREADS: "1" };
  const res = spawnSync("python3", [script, "--chunks", String(CHUNKS), "--warmup", String(WARMUP)], { env, encoding: "utf8" });
  if (res.status !== 0) {
    process.stderr.write(`numpy baseline unavailable: ${res.error?.message ?? res.stderr.trim().split("\n").pop()}\n`);
    return null;
  }
  return JSON.parse(res.stdout.trim().split("\n").pop() as string);
}

const ours16 = measure(16000, "patchify");
const reused = measure(16000, "patchifier");
const ours48 = measure(48000, "none");
const numpy = runNumpy();

const fmt = (v: number | undefined): string => (v === undefined ? "n/a" : v.toFixed(3));
const rows: Array<[string, number[], number | undefined, number | undefined]> = [
  ["dMel 200 ms @16 kHz (streaming)", ours16.dmel, numpy?.dmel_p50, numpy?.dmel_p95],
  ["patchify() 640x480 -> 12x16x40x40", ours16.patch, numpy?.patch_p50, numpy?.patch_p95],
  ["Patchifier 640x480 (reused buffer)", reused.patch, numpy?.patch_p50, numpy?.patch_p95],
  ["chunk: dMel + patchify()", ours16.total, numpy?.total_p50, numpy?.total_p95],
  ["chunk: dMel + Patchifier", reused.total, numpy?.total_p50, numpy?.total_p95],
  ["dMel 200 ms @48 kHz (resample + encode)", ours48.dmel, undefined, undefined],
];
const header = ["step", "ours p50 ms", "ours p95 ms", "numpy p50 ms", "numpy p95 ms", "numpy/ours"];
const lines = rows.map(([name, xs, np50, np95]) => {
  const p50 = percentile(xs, 50);
  return [name, fmt(p50), fmt(percentile(xs, 95)), fmt(np50), fmt(np95), np50 === undefined ? "n/a" : `${(np50 / p50).toFixed(2)}x`];
});
const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] as string).length)));
const show = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join("  ");
console.log(`media bench: ${CHUNKS} chunks after ${WARMUP} warm-up, node ${process.version}${numpy ? `, numpy ${numpy.numpy}` : ""}`);
console.log(show(header));
for (const l of lines) console.log(show(l));

const chunkMs = percentile(ours16.total, 50);
console.log(
  JSON.stringify({
    bench: "media",
    chunk_ms: Number(chunkMs.toFixed(4)),
    chunk_p95_ms: Number(percentile(ours16.total, 95).toFixed(4)),
    realtime_share: Number((chunkMs / CHUNK_MS).toFixed(5)),
    vs_numpy: numpy === null ? null : Number((numpy.total_p50 / chunkMs).toFixed(2)),
    dmel_ms: Number(percentile(ours16.dmel, 50).toFixed(4)),
    dmel_vs_numpy: numpy === null ? null : Number((numpy.dmel_p50 / percentile(ours16.dmel, 50)).toFixed(2)),
    chunk_ms_patchifier: Number(percentile(reused.total, 50).toFixed(4)),
    vs_numpy_patchifier: numpy === null ? null : Number((numpy.total_p50 / percentile(reused.total, 50)).toFixed(2)),
  }),
);
