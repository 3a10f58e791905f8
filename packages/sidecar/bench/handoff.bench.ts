// bench:handoff — what a rolling restart costs the conversations on it. Two
// sidecars (their own processes, echo engine) share a peer key behind a TCP
// balancer; N SDK sessions talk through it at real-time pace (a chunk every
// 200 ms). Then the balancer sends new connections to B and A gets SIGTERM:
// every session gets a GoAway, resumes through the balancer, and B takes it
// from A. Per level it prints how long a session was away (GoAway to resumed),
// the longest wait for an answer around the move against before it, how long
// A's drain took, and whether every chunk was answered exactly once.
//
// --scenario=taker-dies: a third sidecar C, and B is killed (SIGKILL) in the
// middle of taking A's sessions (once A counts --kill-at of them confirmed), the
// balancer then sending new connections to C. The sessions B had confirmed
// die with it (a sidecar that dies loses its sessions); every other one must
// go on on C, with nothing lost or doubled, the ones B had taken and not
// confirmed included (A hands them again once B's lease, --move-lease-ms,
// passed). The sessions that did not come back are checked against A's count
// of the moves B confirmed.
//
//   npm run bench:handoff -- --sessions=1,100,400 --warmup=3 --after=3 [--scenario=drain|taker-dies --kill-at=0.3]
//   HANDOFF_LOG_LEVEL=info shows the sidecars' logs; HANDOFF_DEBUG=1 what the sessions that did not come back last saw
import { spawn, type ChildProcess } from "node:child_process";
import { Microturn, type InteractionSession } from "@microturn/sdk";
import { freePort, startTcpBalancer } from "../src/handoff/testing/tcp-balancer.js";
import { LatencyStats } from "../src/session/latency-stats.js";
import { benchArgs } from "./args.js";
import { cpuMs, sidecarArgv, startServerProcess } from "./server-process.js";

const args = benchArgs();
const levels = (args.get("sessions") ?? "1,100,400").split(",").map(Number);
const warmupS = Number(args.get("warmup") ?? 3);
const afterS = Number(args.get("after") ?? 3);
const CHUNK_MS = 200;
const PEER_KEY = "bench-handoff-peer-key-0123456789abcdef";
const scenario = args.get("scenario") ?? "drain";
if (scenario !== "drain" && scenario !== "taker-dies") throw new Error(`--scenario must be drain or taker-dies, got ${scenario}`);
/** taker-dies: B is killed once A counts this share of the sessions as confirmed by it. */
const killAt = Number(args.get("kill-at") ?? 0.3);

/**
 * Kills `pid` once the sidecar whose metrics are on `metricsPort` counts
 * `moves` confirmed moves out. A process of its own: the bench's own loop,
 * busy with hundreds of clients reconnecting, would look too late.
 */
function killWhenMoved(pid: number, metricsPort: number, moves: number): Promise<void> {
  const pattern = movesPattern("out", "ok");
  const script = `
    const target = ${moves};
    const pattern = new RegExp(${JSON.stringify(pattern)});
    const poll = async () => {
      try {
        const text = await (await fetch("http://127.0.0.1:${metricsPort}/metrics")).text();
        const m = pattern.exec(text);
        if (m && Number(m[1]) >= target) { process.kill(${pid}, "SIGKILL"); return; }
      } catch {}
      setTimeout(poll, 2);
    };
    poll();
    // Never more than 30 s: a move that stalls still ends the level.
    setTimeout(() => { try { process.kill(${pid}, "SIGKILL"); } catch {} process.exit(0); }, 30000).unref();`;
  const watcher = spawn(process.execPath, ["-e", script], { stdio: "inherit" });
  return new Promise((resolve) => watcher.once("exit", () => resolve()));
}
const LEASE_MS = 1000;

interface Tracked {
  session: InteractionSession;
  sent: number;
  /** Outputs by seq: how many times each was answered. */
  answers: Map<number, number>;
  /** When each seq was sent and answered, ms. */
  sentAt: Map<number, number>;
  /** Longest chunk-sent → answer wait before the move, and around/after it. */
  worstBefore: number;
  worstAround: number;
  goAwayAt?: number;
  resumedAt?: number;
  moving: boolean;
  failed?: string;
  /** taker-dies: the session never came back after B was killed (it was B's). */
  diedWithB?: boolean;
  /** The last reconnect attempt's number and the error before it. */
  lastAttempt?: string;
}

async function startPeer(port: number, metricsPort = -1): Promise<ChildProcess> {
  const { child } = await startServerProcess(
    sidecarArgv([
      `--port=${port}`,
      `--metrics-port=${metricsPort}`,
      `--peer-key=${PEER_KEY}`,
      `--advertise-url=grpc://127.0.0.1:${port}`,
      "--drain-ms=30000",
      `--move-lease-ms=${LEASE_MS}`,
      "--background=none",
      `--log-level=${process.env.HANDOFF_LOG_LEVEL ?? "error"}`,
    ]),
  );
  return child;
}

/** The /metrics line of `microturn_session_moves_total` for one direction and result, its count captured (a RegExp source). */
function movesPattern(direction: string, result: string): string {
  return String.raw`microturn_session_moves_total\{direction="${direction}",result="${result}"\} (\d+)`;
}

/** A sidecar's `microturn_session_moves_total` for one direction and result, from its /metrics. */
async function movesCounted(metricsPort: number, direction: string, result: string): Promise<number | undefined> {
  try {
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    const match = new RegExp(movesPattern(direction, result)).exec(text);
    return match ? Number(match[1]) : 0;
  } catch {
    return undefined;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const fmt = (ms: number | undefined) => (ms === undefined ? "   -   " : ms.toFixed(1).padStart(7));

async function level(n: number) {
  const dies = scenario === "taker-dies";
  const [pa, pb, pc, ma, mc] = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort()];
  const [a, b] = [await startPeer(pa, dies ? ma : -1), await startPeer(pb)];
  const c = dies ? await startPeer(pc, mc) : undefined;
  const balancer = await startTcpBalancer(pa);
  const tracked: Tracked[] = [];
  let moved = false;
  try {
    for (let i = 0; i < n; i++) {
      const client = new Microturn({ url: `grpc://127.0.0.1:${balancer.port}`, clock: "manual", reconnect: { initialDelayMs: 50, maxDelayMs: 1000, maxAttempts: 12 } });
      const session = client.session({});
      const t: Tracked = { session, sent: 0, answers: new Map(), sentAt: new Map(), worstBefore: 0, worstAround: 0, moving: false };
      session.on("output", (o) => {
        t.answers.set(o.seq, (t.answers.get(o.seq) ?? 0) + 1);
        const wait = performance.now() - (t.sentAt.get(o.seq) ?? performance.now());
        if (moved) t.worstAround = Math.max(t.worstAround, wait);
        else t.worstBefore = Math.max(t.worstBefore, wait);
      });
      session.on("goAway", () => {
        t.goAwayAt = performance.now();
        t.moving = true;
      });
      session.on("reconnecting", ({ attempt, error }) => (t.lastAttempt = `attempt ${attempt} after: ${error?.message.replace(/[0-9a-f-]{36}|127\.0\.0\.1:\d+/g, "…") ?? "GoAway"}`));
      session.on("reconnected", () => {
        t.resumedAt = performance.now();
        t.moving = false;
      });
      session.on("close", ({ error }) => {
        if (error) t.failed = error.message;
      });
      await session.connect({ signal: AbortSignal.timeout(10_000) });
      tracked.push(t);
    }
    // Each session sends a chunk every 200 ms, the sessions spread over the period.
    const timers = tracked.map((t, i) =>
      setTimeout(() => {
        const tick = () => {
          if (t.failed) return;
          const seq = t.session.sendChunk({ text: `w${t.sent}` }).seq;
          t.sentAt.set(seq, performance.now());
          t.sent++;
        };
        tick();
        timers[i] = setInterval(tick, CHUNK_MS);
      }, (i * CHUNK_MS) / n),
    );
    await sleep(warmupS * 1000);
    // The rolling restart.
    balancer.point(pb);
    moved = true;
    // CPU each sidecar spends on the move, from /proc: A's last reading before it exits.
    const cpuBefore = { a: cpuMs(a.pid) ?? Number.NaN, b: cpuMs(b.pid) ?? Number.NaN };
    let aCpu = cpuBefore.a;
    const sampler = setInterval(() => (aCpu = cpuMs(a.pid) ?? aCpu), 20);
    const loadBefore = process.cpuUsage();
    const t0 = performance.now();
    const exited = new Promise<number>((resolve) => a.once("exit", () => resolve(performance.now() - t0)));
    a.kill("SIGTERM");
    let handedAgain: number | undefined;
    let killedAt: number | undefined;
    let confirmedByB: number | undefined;
    if (dies) {
      // B dies in the middle of the move: sessions are on A, on their way to B, taken and not confirmed, or B's.
      await killWhenMoved(b.pid!, ma, Math.max(1, Math.floor(n * killAt)));
      killedAt = performance.now();
      balancer.point(pc);
      // What B confirmed before it died (C confirms nothing before a client of it has come back and been taken there).
      await sleep(20);
      confirmedByB = await movesCounted(ma, "out", "ok");
      // A's count of sessions handed again (to C) after B let their leases pass, read until A exits.
      const reader = setInterval(() => void movesCounted(ma, "out", "handed_again").then((v) => (handedAgain = v ?? handedAgain)), 100);
      void exited.finally(() => clearInterval(reader));
    }
    const drainMs = await Promise.race([exited, sleep(35_000).then(() => Number.NaN)]);
    clearInterval(sampler);
    const load = process.cpuUsage(loadBefore);
    const loadCpu = (load.user + load.system) / 1000;
    const bCpu = dies ? Number.NaN : (cpuMs(b.pid) ?? Number.NaN) - cpuBefore.b;
    const takenByC = dies ? await movesCounted(mc, "in", "ok") : undefined;
    await sleep(afterS * 1000);
    for (const timer of timers) clearInterval(timer);
    await sleep(1000);

    const away = new LatencyStats();
    const worstAround = new LatencyStats();
    const worstBefore = new LatencyStats();
    let lost = 0;
    let doubled = 0;
    let failed = 0;
    let notMoved = 0;
    // taker-dies: the sessions B held when it died are counted apart (they die with it).
    let diedWithB = 0;
    for (const t of tracked) {
      // Never back after the kill: the session was B's when it died.
      if (killedAt !== undefined && !(t.resumedAt !== undefined && t.resumedAt > killedAt)) {
        t.diedWithB = true;
        diedWithB++;
        continue;
      }
      if (t.failed) failed++;
      if (t.goAwayAt === undefined || t.resumedAt === undefined) notMoved++;
      else away.add(t.resumedAt - t.goAwayAt);
      worstAround.add(t.worstAround);
      worstBefore.add(t.worstBefore);
      for (let seq = 0; seq < t.sent; seq++) {
        const count = t.answers.get(seq) ?? 0;
        if (count === 0) lost++;
        if (count > 1) doubled++;
      }
    }
    const q = (s: LatencyStats, p: number) => (s.size > 0 ? s.quantile(p) : undefined);
    const row = {
      sessions: n,
      away_p50_ms: q(away, 0.5),
      away_p99_ms: q(away, 0.99),
      away_max_ms: q(away, 1),
      worst_wait_before_p99_ms: q(worstBefore, 0.99),
      worst_wait_around_p50_ms: q(worstAround, 0.5),
      worst_wait_around_p99_ms: q(worstAround, 0.99),
      drain_ms: drainMs,
      // A: handing over plus its own chunks until it exits; B: taking over plus the chunks of the sessions it took until A exited.
      owner_cpu_ms: aCpu - cpuBefore.a,
      taker_cpu_ms: bCpu,
      // The clients (SDK sessions reconnecting, the balancer) in this process, same window.
      clients_cpu_ms: loadCpu,
      chunks: tracked.reduce((sum, t) => sum + (t.diedWithB ? 0 : t.sent), 0),
      ...(dies
        ? { killed_b_after_ms: killedAt! - t0, died_with_b: diedWithB, confirmed_by_b: confirmedByB, taken_by_c: takenByC, handed_again: handedAgain, lost_sessions: diedWithB - (confirmedByB ?? Number.NaN) }
        : {}),
      lost,
      doubled,
      failed,
      not_moved: notMoved,
    };
    const taker = dies ? "B or C" : "B";
    console.log(
      `sessions ${String(n).padStart(4)} | away (GoAway → resumed on ${taker}) p50 ${fmt(row.away_p50_ms)} p99 ${fmt(row.away_p99_ms)} max ${fmt(row.away_max_ms)} ms` +
        ` | longest wait for an answer: before p99 ${fmt(row.worst_wait_before_p99_ms)}, around the move p50 ${fmt(row.worst_wait_around_p50_ms)} p99 ${fmt(row.worst_wait_around_p99_ms)} ms` +
        ` | A drained in ${fmt(drainMs)} ms, CPU A ${fmt(row.owner_cpu_ms)} B ${fmt(row.taker_cpu_ms)} clients ${fmt(row.clients_cpu_ms)} ms | ${row.chunks} chunks: ${lost} lost, ${doubled} doubled, ${failed} sessions failed, ${notMoved} not moved`,
    );
    if (dies) {
      console.log(
        `  B killed ${fmt(killedAt! - t0)} ms after A's SIGTERM: ${diedWithB} sessions never came back (left out above), B had confirmed ${confirmedByB ?? "?"} (A's count): ${row.lost_sessions} lost beyond B's own;` +
          ` C took ${takenByC ?? "?"}, ${handedAgain ?? "?"} of them handed again by A after B had taken them and not confirmed`,
      );
    }
    const reasons = new Map<string, number>();
    for (const t of tracked) if (t.failed && !t.diedWithB) reasons.set(t.failed, (reasons.get(t.failed) ?? 0) + 1);
    for (const [reason, count] of reasons) console.log(`  ${count} sessions failed: ${reason}`);
    if (process.env.HANDOFF_DEBUG) {
      const stuck = new Map<string, number>();
      for (const t of tracked) if (t.diedWithB) stuck.set(`${t.failed ?? "open"} | ${t.lastAttempt}`, (stuck.get(`${t.failed ?? "open"} | ${t.lastAttempt}`) ?? 0) + 1);
      for (const [what, count] of stuck) console.log(`  never came back: ${count} × ${what}`);
    }
    return row;
  } finally {
    await Promise.all(tracked.map((t) => t.session.close({ timeoutMs: 1000 }).catch(() => undefined)));
    a.kill("SIGKILL");
    b.kill("SIGKILL");
    c?.kill("SIGKILL");
    await balancer.close();
  }
}

console.log(
  scenario === "taker-dies"
    ? `bench:handoff --scenario=taker-dies — three sidecars (echo engine) behind a TCP balancer, sessions at real-time pace; A drains (SIGTERM) after ${warmupS} s, B takes its sessions and is killed once it confirmed ${killAt * 100}% of them, C takes the rest (lease ${LEASE_MS} ms; node ${process.version})`
    : `bench:handoff — two sidecars (echo engine) behind a TCP balancer, sessions at real-time pace; A drains (SIGTERM) after ${warmupS} s, B takes its sessions (node ${process.version})`,
);
const rows = [];
for (const n of levels) rows.push(await level(n));
console.log(JSON.stringify({ bench: "handoff", scenario, levels: rows }));
