// npm run bench:sidecar — what the sidecar path adds over calling the engine
// directly, and how many sessions one sidecar holds at 5 chunks/s each.
//
// A sidecar runs in its own process (`microturn serve --engine echo`), this
// process generates the load.
// 0. Back to back: one session, each chunk sent when the previous answer came
//    (the path's own cost, without the idle wake-ups real-time pacing adds).
// 1. Overhead: the same echo engine, (a) called in-process, (b) behind the
//    sidecar over loopback gRPC; chunk sent → OutputChunk received, with 1 and
//    256 concurrent sessions at real-time pace. overhead = via-sidecar − direct.
//    Also (c) the wire alone: a bare Converse server in its own process that
//    answers at once (grpc-floor-server.ts). (b) and (c) alternate in rounds so
//    both see the same machine; via − floor is the sidecar's own share.
// 2. Capacity: N sessions each sending a 200 ms chunk every 200 ms; p99 chunk → ack,
//    and the sidecar process's CPU time per chunk (from /proc).
//    The largest N with p99 < 20 ms is max_sessions.
// The load comes from lean-client.ts (gRPC over node:http2, events encoded once
// per tick), so the generator takes less of the two cores it shares with the
// sidecar; --client=grpc-js uses grpc-js clients instead. Every row also gives
// the sidecar's GC pauses (it runs with --trace-gc). The sidecar runs with the
// Node flags of its image; SIDECAR_NODE_FLAGS replaces them (GC trials).
// Prints a table, then one JSON line.
import type { ChildProcess } from "node:child_process";
import { availableParallelism } from "node:os";
import * as grpc from "@grpc/grpc-js";
import { ClientEvent, InteractionClient, PROTOCOL_VERSION, type ServerEvent, type SessionConfig } from "@microturn/protocol";
import { createEchoEngine } from "../src/engines/echo/index.js";
import type { Engine } from "../src/engines/engine.js";
import { LatencyStats } from "../src/session/latency-stats.js";
import { encodeClientEvent, EVENT, LeanConverseClient } from "./lean-client.js";
import { cpuMs, floorArgv, sidecarArgv, startServerProcess } from "./server-process.js";
import { benchArgs } from "./args.js";

const CHUNK_MS = 200;
const TEXT = "hello there";
const args = benchArgs();
const SECONDS = Number(args.get("seconds") ?? 8);
/** Chunks sent in the first seconds of a level are not counted (JIT, stream set-up). */
const WARMUP_S = Number(args.get("warmup") ?? 2);
const LEVELS = (args.get("levels") ?? "250,500,1000,1500,2000").split(",").map(Number);
/** One session gives 5 samples a second: it runs longer so its p99 is not just the worst sample. */
const SECONDS_ONE = Number(args.get("seconds-one") ?? 20);
/** Alternating rounds of floor and sidecar per overhead level. */
const ROUNDS = Number(args.get("rounds") ?? 2);
/**
 * Seconds of 256-session load the sidecar and the floor server carry before
 * the 256-session level is measured: code paths warm, as in a sidecar long in
 * service. (Not before the 1-session level: the garbage the warm-up leaves is
 * collected by full collections over the following seconds.)
 */
const WARM_S = Number(args.get("warm") ?? 6);
/**
 * Node flags of the sidecar process: those the image runs it with
 * (packages/sidecar/Dockerfile), unless SIDECAR_NODE_FLAGS says otherwise
 * ("" for Node's defaults).
 */
const SIDECAR_FLAGS = (process.env.SIDECAR_NODE_FLAGS ?? "--min-semi-space-size=16").split(" ").filter(Boolean);
/** `microturn serve` flags added to the sidecar's (SIDECAR_ARGS="--spin-window-ms=0", say). */
const SIDECAR_ARGS = (process.env.SIDECAR_ARGS ?? "").split(" ").filter(Boolean);
/** The load generator's client: lean (node:http2, see lean-client.ts) or grpc-js. */
const CLIENT = args.get("client") ?? "lean";
/** Which parts run: back2back, overhead, capacity (all by default). */
const PHASES = new Set((args.get("phases") ?? "back2back,overhead,capacity").split(","));
/**
 * `microturn serve` flags of a second sidecar the overhead phase measures in the
 * same rounds as the first (--compare-args=--spin-window-ms=0, say): a setting's
 * effect, measured in one run.
 */
const COMPARE_ARGS = (args.get("compare-args") ?? "").split(" ").filter(Boolean);
/** The overhead phase's levels (1 and 256 sessions, the targets'). */
const OVERHEAD_SESSIONS = (args.get("overhead-sessions") ?? "1,256").split(",").map(Number);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const CONFIG = { inputModalities: [], outputMode: 0, inputSampleRateHz: 16000, outputSampleRateHz: 16000, voice: "", instructions: "", tools: [], defaultDelivery: 0, maxOutputTokensPerTurn: 4, chunkDurationMs: CHUNK_MS, unsupportedInput: 0, labels: {}, record: false } satisfies SessionConfig;

/** Direct: each session appends a chunk every 200 ms to the engine itself. */
async function direct(engine: Engine, sessions: number, seconds: number): Promise<LatencyStats> {
  const stats = new LatencyStats(sessions * seconds * 5 + 16);
  const ticks = Math.round((seconds * 1000) / CHUNK_MS);
  await Promise.all(
    Array.from({ length: sessions }, async (_, i) => {
      const session = await engine.openSession({});
      await sleep((i * CHUNK_MS) / sessions);
      const t0 = performance.now();
      for (let seq = 0; seq < ticks; seq++) {
        const start = performance.now();
        for await (const _out of session.append({ seq, startMs: seq * CHUNK_MS, durationMs: CHUNK_MS, text: TEXT }, { maxOutputTokens: 4 })) void _out;
        if (seq * CHUNK_MS >= WARMUP_S * 1000) stats.add(performance.now() - start);
        await sleep(Math.max(0, t0 + (seq + 1) * CHUNK_MS - performance.now()));
      }
      await session.close();
    }),
  );
  return stats;
}

interface Load {
  output: LatencyStats;
  ack: LatencyStats;
  errors: number;
}

/**
 * Via a sidecar: N streams, each sending a chunk every 200 ms; latency to ack
 * and to output. The lean client (the default) speaks gRPC over node:http2 with
 * events encoded once per tick; `--client=grpc-js` uses grpc-js clients.
 */
function viaSidecar(address: string, sessions: number, seconds: number, into?: Load): Promise<Load> {
  return CLIENT === "grpc-js" ? viaSidecarGrpcJs(address, sessions, seconds, into) : viaSidecarLean(address, sessions, seconds, into);
}

async function viaSidecarLean(address: string, sessions: number, seconds: number, into?: Load, connections = 8): Promise<Load> {
  const client = new LeanConverseClient(address, connections);
  const output = into?.output ?? new LatencyStats(sessions * seconds * 5 + 16);
  const ack = into?.ack ?? new LatencyStats(sessions * seconds * 5 + 16);
  let errors = into?.errors ?? 0;
  const ticks = Math.round((seconds * 1000) / CHUNK_MS);
  const warmupTicks = (WARMUP_S * 1000) / CHUNK_MS;
  const start = encodeClientEvent(ClientEvent.fromPartial({ event: { $case: "start", value: { protocolVersion: PROTOCOL_VERSION, config: CONFIG } } }));
  const inputs = Array.from({ length: ticks }, (_, seq) =>
    encodeClientEvent(ClientEvent.fromPartial({ event: { $case: "input", value: { seq, startMs: seq * CHUNK_MS, durationMs: CHUNK_MS, text: TEXT, frames: [], patches: [], userSpeaking: true } } })),
  );
  const end = encodeClientEvent(ClientEvent.fromPartial({ event: { $case: "end", value: { reason: "bench" } } }));
  await Promise.all(
    Array.from({ length: sessions }, async (_, i) => {
      const sentAt = new Float64Array(ticks);
      let started!: () => void;
      const ready = new Promise<void>((r) => (started = r));
      const stream = client.open((field, seq) => {
        const now = performance.now();
        if (field === EVENT.started) started();
        else if (field === EVENT.inputAck && seq >= warmupTicks) ack.add(now - sentAt[seq]!);
        else if (field === EVENT.output && seq >= warmupTicks) output.add(now - sentAt[seq]!);
        else if (field === EVENT.error) errors++;
      });
      stream.write(start);
      await ready;
      await sleep((i * CHUNK_MS) / sessions);
      const t0 = performance.now();
      for (let seq = 0; seq < ticks; seq++) {
        sentAt[seq] = performance.now();
        stream.write(inputs[seq]!);
        await sleep(Math.max(0, t0 + (seq + 1) * CHUNK_MS - performance.now()));
      }
      await sleep(300);
      stream.write(end);
      await stream.end(5000);
    }),
  );
  client.close();
  return { output, ack, errors };
}

async function viaSidecarGrpcJs(address: string, sessions: number, seconds: number, into?: Load, channels = 8): Promise<Load> {
  const clients = Array.from({ length: channels }, (_, i) => new InteractionClient(address, grpc.credentials.createInsecure(), { "grpc.channel_id": i } as grpc.ClientOptions));
  const output = into?.output ?? new LatencyStats(sessions * seconds * 5 + 16);
  const ack = into?.ack ?? new LatencyStats(sessions * seconds * 5 + 16);
  let errors = into?.errors ?? 0;
  const ticks = Math.round((seconds * 1000) / CHUNK_MS);
  const counted = (seq: number) => seq * CHUNK_MS >= WARMUP_S * 1000;
  await Promise.all(
    Array.from({ length: sessions }, async (_, i) => {
      const call = clients[i % channels]!.converse();
      const sentAt = new Map<number, number>();
      let started!: () => void;
      const ready = new Promise<void>((r) => (started = r));
      let ended!: () => void;
      const done = new Promise<void>((r) => (ended = r));
      call.on("data", (e: ServerEvent) => {
        const now = performance.now();
        const ev = e.event;
        if (ev?.$case === "started") started();
        else if (ev?.$case === "inputAck" && counted(ev.value.seq)) ack.add(now - sentAt.get(ev.value.seq)!);
        else if (ev?.$case === "output" && counted(ev.value.seq)) output.add(now - sentAt.get(ev.value.seq)!);
        else if (ev?.$case === "error") errors++;
      });
      call.on("end", () => ended());
      call.on("error", () => ended());
      call.write(ClientEvent.fromPartial({ event: { $case: "start", value: { protocolVersion: PROTOCOL_VERSION, config: CONFIG } } }));
      await ready;
      await sleep((i * CHUNK_MS) / sessions);
      const t0 = performance.now();
      for (let seq = 0; seq < ticks; seq++) {
        sentAt.set(seq, performance.now());
        call.write(ClientEvent.fromPartial({ event: { $case: "input", value: { seq, startMs: seq * CHUNK_MS, durationMs: CHUNK_MS, text: TEXT, frames: [], patches: [], userSpeaking: true } } }));
        await sleep(Math.max(0, t0 + (seq + 1) * CHUNK_MS - performance.now()));
      }
      await sleep(300);
      call.write(ClientEvent.fromPartial({ event: { $case: "end", value: { reason: "bench" } } }));
      call.end();
      await Promise.race([done, sleep(5000)]);
    }),
  );
  for (const c of clients) c.close();
  return { output, ack, errors };
}

/** One session, each chunk sent as soon as the previous output arrived: the path's own cost, without idle wake-ups. */
async function backToBack(address: string, chunks: number): Promise<LatencyStats> {
  const client = new InteractionClient(address, grpc.credentials.createInsecure());
  const call = client.converse();
  const stats = new LatencyStats(chunks);
  let wake: (() => void) | undefined;
  let ready!: () => void;
  const started = new Promise<void>((r) => (ready = r));
  call.on("data", (e: ServerEvent) => {
    if (e.event?.$case === "started") ready();
    else if (e.event?.$case === "output") wake?.();
  });
  call.on("error", () => undefined);
  call.write(ClientEvent.fromPartial({ event: { $case: "start", value: { protocolVersion: PROTOCOL_VERSION, config: CONFIG } } }));
  await started;
  for (let seq = 0; seq < chunks + 200; seq++) {
    const t = performance.now();
    const answered = new Promise<void>((r) => (wake = r));
    call.write(ClientEvent.fromPartial({ event: { $case: "input", value: { seq, startMs: seq * CHUNK_MS, durationMs: CHUNK_MS, text: TEXT, frames: [], patches: [], userSpeaking: true } } }));
    await answered;
    if (seq >= 200) stats.add(performance.now() - t);
  }
  call.cancel();
  client.close();
  return stats;
}

async function directBackToBack(engine: Engine, chunks: number): Promise<LatencyStats> {
  const session = await engine.openSession({});
  const stats = new LatencyStats(chunks);
  for (let seq = 0; seq < chunks + 200; seq++) {
    const t = performance.now();
    for await (const _out of session.append({ seq, startMs: seq * CHUNK_MS, durationMs: CHUNK_MS, text: TEXT }, { maxOutputTokens: 4 })) void _out;
    if (seq >= 200) stats.add(performance.now() - t);
  }
  await session.close();
  return stats;
}

/**
 * The sidecar's garbage-collection pauses, from its `--trace-gc` lines: what
 * most of its p99 above the wire is made of at many sessions.
 */
class GcPauses {
  private pauses: number[] = [];
  private fullMaxMs = 0;
  private fullCount = 0;
  /** Wall time counted so far, ms, and since when the current stretch runs (undefined between stretches). */
  private countedMs = 0;
  private since: number | undefined;

  /** Reads whole lines of the process's stdout; pauses count only while measuring. */
  feed(text: string): void {
    if (this.since === undefined) return;
    for (const match of text.matchAll(/: (Scavenge|Mark-Compact|Mark-sweep)[^,]*, ([\d.]+) \/ [\d.]+ ms/g)) {
      const ms = Number(match[2]);
      this.pauses.push(ms);
      if (match[1] !== "Scavenge") {
        this.fullCount++;
        this.fullMaxMs = Math.max(this.fullMaxMs, ms);
      }
    }
  }

  /** Counts the pauses (and the wall time) while `work` runs; stretches add up until `take`. */
  async measure<T>(work: () => Promise<T>): Promise<T> {
    this.since = performance.now();
    try {
      return await work();
    } finally {
      this.countedMs += performance.now() - this.since;
      this.since = undefined;
    }
  }

  /** The pauses counted since the last take: ms per second of counted time, the largest, how many; the same for full (mark) collections. */
  take(): GcFigures {
    const total = this.pauses.reduce((a, b) => a + b, 0);
    const out = { msPerS: total / (this.countedMs / 1000), maxMs: Math.max(0, ...this.pauses), count: this.pauses.length, fullCount: this.fullCount, fullMaxMs: this.fullMaxMs };
    this.pauses = [];
    this.fullCount = 0;
    this.fullMaxMs = 0;
    this.countedMs = 0;
    return out;
  }
}

interface GcFigures {
  msPerS: number;
  maxMs: number;
  count: number;
  fullCount: number;
  fullMaxMs: number;
}

const gcText = (gc: GcFigures) =>
  `sidecar GC ${gc.msPerS.toFixed(1)} ms/s (${gc.count} pauses, max ${gc.maxMs.toFixed(1)} ms; ${gc.fullCount} full, max ${gc.fullMaxMs.toFixed(1)} ms)`;

/**
 * SIDECAR_CPUS (a taskset list such as "2,3") pins the sidecar and the floor
 * server to those cores, apart from the load generator: on a machine with more
 * cores this measures the sidecar on exactly the cores the targets name.
 */
const SIDECAR_CPUS = process.env.SIDECAR_CPUS;
const pinned = SIDECAR_CPUS ? { cpus: SIDECAR_CPUS } : {};

function startServeProcess(gc?: GcPauses, serveArgs = SIDECAR_ARGS): Promise<{ child: ChildProcess; address: string }> {
  return startServerProcess(["--trace-gc", ...SIDECAR_FLAGS, ...sidecarArgv(["--max-sessions", "10000", "--log-level", "warn", ...serveArgs])], {
    ...pinned,
    ...(gc ? { onLines: (lines: string) => gc.feed(lines) } : {}),
  });
}

function startFloorProcess(): Promise<{ child: ChildProcess; address: string }> {
  return startServerProcess(floorArgv(), pinned);
}

const fmt = (n: number) => n.toFixed(2).padStart(8);

async function main(): Promise<void> {
  console.log(
    `bench:sidecar — echo engine, ${SECONDS} s per level (first ${WARMUP_S} s not counted), chunks of ${CHUNK_MS} ms at real-time pace, ${CLIENT} client, sidecar node flags [${SIDECAR_FLAGS.join(" ")}]${SIDECAR_ARGS.length ? `, serve ${SIDECAR_ARGS.join(" ")}` : ""}${SIDECAR_CPUS ? `, sidecar on cores ${SIDECAR_CPUS}` : ""} (node ${process.version})`,
  );
  const rows: string[] = [];
  const row = (line: string) => {
    rows.push(line);
    console.log(line);
  };
  const overhead: Record<number, { direct: LatencyStats; via: LatencyStats; floor: LatencyStats; compare?: LatencyStats }> = {};
  // The sidecar runs in its own process (as deployed), the load generator here.
  const gc = new GcPauses();
  const { child, address } = await startServeProcess(gc);
  let tight: { direct: LatencyStats; via: LatencyStats } | undefined;
  if (PHASES.has("back2back")) {
    tight = { direct: await directBackToBack(await createEchoEngine({}), 2000), via: await backToBack(address, 2000) };
    row(
      `back2back sessions=    1  direct p50 ${fmt(tight.direct.quantile(0.5))} p99 ${fmt(tight.direct.quantile(0.99))} | via sidecar p50 ${fmt(tight.via.quantile(0.5))} p99 ${fmt(tight.via.quantile(0.99))} | added p99 ${fmt(tight.via.quantile(0.99) - tight.direct.quantile(0.99))} ms`,
    );
  }
  if (PHASES.has("overhead")) {
    const floorProcess = await startFloorProcess();
    const compareProcess = COMPARE_ARGS.length ? await startServeProcess(undefined, [...SIDECAR_ARGS, ...COMPARE_ARGS]) : undefined;
    for (const sessions of OVERHEAD_SESSIONS) {
      const seconds = sessions === 1 ? Math.max(SECONDS, SECONDS_ONE) : SECONDS;
      const servers = [floorProcess.address, address, ...(compareProcess ? [compareProcess.address] : [])];
      if (sessions > 1 && WARM_S > 0) for (const warm of servers) await viaSidecar(warm, sessions, WARM_S);
      const engine = await createEchoEngine({ maxSessions: 10_000 });
      const d = await direct(engine, sessions, seconds);
      const samples = ROUNDS * (sessions * seconds * 5 + 16);
      const load = (): Load => ({ output: new LatencyStats(samples), ack: new LatencyStats(samples), errors: 0 });
      const [v, f, c] = [load(), load(), load()];
      // CPU time of each sidecar process over its own rounds, per chunk sent.
      const cpu = { via: 0, compare: 0 };
      const timedCpu = async (pid: number | undefined, work: () => Promise<Load>): Promise<{ load: Load; ms: number }> => {
        const before = cpuMs(pid) ?? NaN;
        const done = await work();
        return { load: done, ms: (cpuMs(pid) ?? NaN) - before };
      };
      const runMain = async () => {
        const main = await timedCpu(child.pid, () => gc.measure(() => viaSidecar(address, sessions, seconds, v)));
        v.errors = main.load.errors;
        cpu.via += main.ms;
      };
      const runCompare = async () => {
        if (!compareProcess) return;
        const other = await timedCpu(compareProcess.child.pid, () => viaSidecar(compareProcess.address, sessions, seconds, c));
        c.errors = other.load.errors;
        cpu.compare += other.ms;
      };
      for (let round = 0; round < ROUNDS; round++) {
        f.errors = (await viaSidecar(floorProcess.address, sessions, seconds, f)).errors;
        // The two sidecars take turns going first, so neither always follows the other.
        for (const run of round % 2 === 0 ? [runMain, runCompare] : [runCompare, runMain]) await run();
      }
      // Per second of load as well as per chunk: with one session a sidecar's idle upkeep (timers, metrics) outweighs its chunks.
      const chunksSent = ROUNDS * sessions * Math.round((seconds * 1000) / CHUNK_MS);
      const cpuText = (ms: number) =>
        Number.isFinite(ms) ? `CPU ${(ms / (ROUNDS * seconds)).toFixed(1)} ms/s (${Math.round((ms * 1000) / chunksSent)} µs/chunk)` : "CPU -";
      overhead[sessions] = { direct: d, via: v.output, floor: f.output, ...(compareProcess ? { compare: c.output } : {}) };
      const p99 = (s: LatencyStats) => s.quantile(0.99);
      row(
        `overhead   sessions=${String(sessions).padStart(5)}  direct p50 ${fmt(d.quantile(0.5))} p99 ${fmt(p99(d))} | grpc floor p50 ${fmt(f.output.quantile(0.5))} p99 ${fmt(p99(f.output))} | via sidecar p50 ${fmt(v.output.quantile(0.5))} p99 ${fmt(p99(v.output))} | added p99 vs direct ${fmt(p99(v.output) - p99(d))} vs floor ${fmt(p99(v.output) - p99(f.output))} ms  errors ${v.errors}  ${cpuText(cpu.via)}  ${gcText(gc.take())}`,
      );
      if (compareProcess) {
        row(
          `           sidecar with ${COMPARE_ARGS.join(" ")}: p50 ${fmt(c.output.quantile(0.5))} p99 ${fmt(p99(c.output))} | added p99 vs direct ${fmt(p99(c.output) - p99(d))} ms  errors ${c.errors}  ${cpuText(cpu.compare)}`,
        );
      }
    }
    floorProcess.child.kill("SIGTERM");
    compareProcess?.child.kill("SIGTERM");
  }

  let maxSessions = 0;
  const capacity: Record<string, number> = {};
  const cpuPerChunk: Record<string, number> = {};
  const clientCpuPerChunk: Record<string, number> = {};
  const gcByLevel: Record<string, { ms_per_s: number; max_ms: number; full: number; full_max_ms: number }> = {};
  try {
    for (const n of PHASES.has("capacity") ? LEVELS : []) {
      const cpuBefore = cpuMs(child.pid);
      const clientBefore = process.cpuUsage();
      const load = await gc.measure(() => viaSidecar(address, n, SECONDS));
      const pauses = gc.take();
      gcByLevel[n] = { ms_per_s: Number(pauses.msPerS.toFixed(2)), max_ms: pauses.maxMs, full: pauses.fullCount, full_max_ms: pauses.fullMaxMs };
      const cpuAfter = cpuMs(child.pid);
      const client = process.cpuUsage(clientBefore);
      const clientUs = (client.user + client.system) / (n * SECONDS * 5);
      clientCpuPerChunk[n] = Math.round(clientUs);
      const p99 = load.ack.quantile(0.99);
      capacity[n] = p99;
      // Every chunk sent counts, warm-up included: the CPU was spent on all of them.
      const cpuUs = cpuBefore === undefined || cpuAfter === undefined ? NaN : ((cpuAfter - cpuBefore) * 1000) / (n * SECONDS * 5);
      if (Number.isFinite(cpuUs)) cpuPerChunk[n] = Math.round(cpuUs);
      const ok = p99 < 20 && load.errors === 0 && load.ack.size >= n * ((SECONDS - WARMUP_S) * 5 - 1);
      if (ok) maxSessions = n;
      row(
        `capacity   sessions=${String(n).padStart(5)}  chunk→ack p50 ${fmt(load.ack.quantile(0.5))} p99 ${fmt(p99)} ms  acks ${load.ack.size}  errors ${load.errors}  CPU µs/chunk sidecar ${fmt(cpuUs)} load generator ${fmt(clientUs)}  ${gcText(pauses)}  ${ok ? "ok" : "over"}`,
      );
      if (!ok) break;
    }
  } finally {
    child.kill("SIGTERM");
  }
  const num = (n: number | undefined) => (n === undefined ? null : Number(n.toFixed(3)));
  const at = (n: number) => overhead[n];
  console.log(
    JSON.stringify({
      bench: "sidecar",
      overhead_p99_ms_1: num(at(1) && at(1)!.via.quantile(0.99) - at(1)!.direct.quantile(0.99)),
      overhead_p99_ms_256: num(at(256) && at(256)!.via.quantile(0.99) - at(256)!.direct.quantile(0.99)),
      overhead_p99_ms_1_vs_grpc_floor: num(at(1) && at(1)!.via.quantile(0.99) - at(1)!.floor.quantile(0.99)),
      overhead_p99_ms_256_vs_grpc_floor: num(at(256) && at(256)!.via.quantile(0.99) - at(256)!.floor.quantile(0.99)),
      grpc_floor_p99_ms_1: num(at(1)?.floor.quantile(0.99)),
      grpc_floor_p99_ms_256: num(at(256)?.floor.quantile(0.99)),
      overhead_p99_ms_1_back_to_back: num(tight && tight.via.quantile(0.99) - tight.direct.quantile(0.99)),
      via_p50_ms_1_back_to_back: num(tight?.via.quantile(0.5)),
      via_p99_ms_1: num(at(1)?.via.quantile(0.99)),
      via_p99_ms_256: num(at(256)?.via.quantile(0.99)),
      max_sessions: PHASES.has("capacity") ? maxSessions : null,
      ack_p99_ms_by_sessions: capacity,
      sidecar_cpu_us_per_chunk_by_sessions: cpuPerChunk,
      load_generator_cpu_us_per_chunk_by_sessions: clientCpuPerChunk,
      sidecar_gc_by_sessions: gcByLevel,
      sidecar_cpus: SIDECAR_CPUS ?? null,
      sidecar_args: SIDECAR_ARGS.join(" "),
      compare_args: COMPARE_ARGS.join(" "),
      compare_p50_ms_1: num(at(1)?.compare?.quantile(0.5)),
      compare_p99_ms_1: num(at(1)?.compare?.quantile(0.99)),
      via_p50_ms_1: num(at(1)?.via.quantile(0.5)),
      bench_process_cpus: availableParallelism(),
    }),
  );
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
