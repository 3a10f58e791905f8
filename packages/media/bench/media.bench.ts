// `npm run bench:media`: per-chunk cost of the media work done for every
// 200 ms of input — streaming dMel of 200 ms of 16 kHz audio plus patchify of
// one 640x480 RGB frame — against a numpy version of the same steps
// (media_bench_numpy.py). The two alternate in rounds so both see the same
// machine load. Prints a table, then one JSON line.
// Options: --chunks N per round (default 250), --rounds N (default 10), --warmup N (default 100).

import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { CHUNK_MS, DmelEncoder, Patchifier, patchify } from "../src/index.js";

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

const CHUNKS = arg("chunks", 250);
const ROUNDS = arg("rounds", 10);
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

interface Timings {
  dmel: number[];
  patch: number[];
  total: number[];
  cpuMs: number[];
}

const empty = (): Timings => ({ dmel: [], patch: [], total: [], cpuMs: [] });
type VideoPath = "none" | "patchify" | "patchifier";

const frames = Array.from({ length: 4 }, (_, f) => Uint8Array.from({ length: 640 * 480 * 3 }, (_, i) => (i * 7 + f * 13) & 255));
const plan = new Patchifier(640, 480);

function measure(into: Timings, rate: number, video: VideoPath, chunks: number, warmup: number): void {
  // Whole samples per chunk; an odd rate such as 44101 Hz has no whole number per 200 ms.
  const perChunk = Math.round((rate * CHUNK_MS) / 1000);
  const audio = signal(perChunk * 50, rate);
  const encoder = new DmelEncoder({ sampleRate: rate });
  let cpu = process.cpuUsage();
  for (let i = 0; i < warmup + chunks; i++) {
    if (i === warmup) cpu = process.cpuUsage();
    const c = i % 50;
    const chunk = audio.subarray(c * perChunk, (c + 1) * perChunk);
    const frame = frames[i % 4] as Uint8Array;
    const t0 = performance.now();
    const codes = encoder.push(chunk);
    const t1 = performance.now();
    const patches =
      video === "patchify" ? patchify(frame, 640, 480).patches : video === "patchifier" ? plan.patchify(frame) : null;
    const t2 = performance.now();
    if (rate === 16000 && codes.length !== 16 * 80) throw new Error(`expected 16 frames, got ${codes.length / 80}`);
    if (patches !== null && patches.length !== 640 * 480 * 3) throw new Error("expected 12 x 16 patches of 40x40");
    if (i >= warmup) {
      into.dmel.push(t1 - t0);
      into.patch.push(t2 - t1);
      into.total.push(t2 - t0);
    }
  }
  const used = process.cpuUsage(cpu);
  into.cpuMs.push((used.user + used.system) / 1000 / chunks);
}

interface NumpyRound {
  numpy: string;
  cpu_ms: number;
  dmel: number[];
  patch: number[];
  total: number[];
}

function numpyRound(into: Timings): string | null {
  const script = fileURLToPath(new URL("./media_bench_numpy.py", import.meta.url));
  // One BLAS thread: the per-chunk matrices are tiny and our encoder is single-threaded too.
  const env = { ...process.env, OPENBLAS_NUM_THREADS: "1", OMP_NUM_THREADS: "1", MKL_NUM_THREADS: "1" };
  const res = spawnSync("python3", [script, "--chunks", String(CHUNKS), "--warmup", String(WARMUP)], { env, encoding: "utf8" });
  if (res.status !== 0) {
    process.stderr.write(`numpy baseline unavailable: ${res.error?.message ?? res.stderr.trim().split("\n").pop()}\n`);
    return null;
  }
  const round = JSON.parse(res.stdout.trim().split("\n").pop() as string) as NumpyRound;
  into.dmel.push(...round.dmel);
  into.patch.push(...round.patch);
  into.total.push(...round.total);
  into.cpuMs.push(round.cpu_ms);
  return round.numpy;
}

const withPatchify = empty();
const withPatchifier = empty();
const at48 = empty();
// Rates with no small rational ratio to 16 kHz (44101/16000, 95999/16000) take the resampler's
// interpolated-kernel path instead of its per-phase table.
const at44101 = empty();
const at95999 = empty();
const numpy = empty();
let numpyVersion: string | null = null;
for (let r = 0; r < ROUNDS; r++) {
  measure(withPatchify, 16000, "patchify", CHUNKS, r === 0 ? WARMUP : 10);
  measure(withPatchifier, 16000, "patchifier", CHUNKS, r === 0 ? WARMUP : 10);
  measure(at48, 48000, "none", CHUNKS, r === 0 ? WARMUP : 10);
  measure(at44101, 44101, "none", CHUNKS, r === 0 ? WARMUP : 10);
  measure(at95999, 95999, "none", CHUNKS, r === 0 ? WARMUP : 10);
  numpyVersion = numpyRound(numpy) ?? numpyVersion;
}
const haveNumpy = numpy.total.length > 0;

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
const fmt = (v: number | undefined): string => (v === undefined || Number.isNaN(v) ? "n/a" : v.toFixed(3));
type Line = [string, number[], number[] | undefined];
const lines: Line[] = [
  ["dMel 200 ms @16 kHz (streaming)", withPatchify.dmel, haveNumpy ? numpy.dmel : undefined],
  ["patchify() 640x480 -> 12x16x40x40", withPatchify.patch, haveNumpy ? numpy.patch : undefined],
  ["Patchifier 640x480 (reused buffer)", withPatchifier.patch, haveNumpy ? numpy.patch : undefined],
  ["chunk: dMel + patchify()", withPatchify.total, haveNumpy ? numpy.total : undefined],
  ["chunk: dMel + Patchifier", withPatchifier.total, haveNumpy ? numpy.total : undefined],
  ["dMel 200 ms @48 kHz (resample + encode)", at48.dmel, undefined],
  ["dMel 200 ms @44.101 kHz (odd rate)", at44101.dmel, undefined],
  ["dMel 200 ms @95.999 kHz (odd rate)", at95999.dmel, undefined],
];
const header = ["step", "ours p50 ms", "ours p95 ms", "numpy p50 ms", "numpy p95 ms", "numpy/ours (p50)"];
const rows = lines.map(([name, ours, theirs]) => {
  const p50 = percentile(ours, 50);
  const t50 = theirs === undefined ? undefined : percentile(theirs, 50);
  return [name, fmt(p50), fmt(percentile(ours, 95)), fmt(t50), fmt(theirs && percentile(theirs, 95)), t50 === undefined ? "n/a" : `${(t50 / p50).toFixed(2)}x`];
});
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((l) => (l[i] as string).length)));
const show = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join("  ");
console.log(
  `media bench: ${ROUNDS} rounds x ${CHUNKS} chunks (alternating with numpy), node ${process.version}` +
    (numpyVersion === null ? "" : `, numpy ${numpyVersion} (1 BLAS thread)`),
);
console.log(show(header));
for (const l of rows) console.log(show(l));
console.log(
  `CPU per chunk (mean): ours dMel + patchify() ${fmt(mean(withPatchify.cpuMs))} ms, dMel + Patchifier ${fmt(mean(withPatchifier.cpuMs))} ms` +
    (haveNumpy ? `, numpy ${fmt(mean(numpy.cpuMs))} ms` : ""),
);

const chunkMs = percentile(withPatchify.total, 50);
const numpyMs = haveNumpy ? percentile(numpy.total, 50) : null;
const round = (v: number, d = 4): number => Number(v.toFixed(d));
console.log(
  JSON.stringify({
    bench: "media",
    chunk_ms: round(chunkMs),
    chunk_p95_ms: round(percentile(withPatchify.total, 95)),
    realtime_share: round(chunkMs / CHUNK_MS, 5),
    vs_numpy: numpyMs === null ? null : round(numpyMs / chunkMs, 2),
    dmel_ms: round(percentile(withPatchify.dmel, 50)),
    dmel_vs_numpy: numpyMs === null ? null : round(percentile(numpy.dmel, 50) / percentile(withPatchify.dmel, 50), 2),
    chunk_ms_patchifier: round(percentile(withPatchifier.total, 50)),
    vs_numpy_patchifier: numpyMs === null ? null : round(numpyMs / percentile(withPatchifier.total, 50), 2),
    dmel_ms_48k: round(percentile(at48.dmel, 50)),
    dmel_ms_44101: round(percentile(at44101.dmel, 50)),
    dmel_ms_95999: round(percentile(at95999.dmel, 50)),
  }),
);
