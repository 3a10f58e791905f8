// Prometheus metrics of one sidecar (served on /metrics): micro-turn and
// append latency, real-time factor, queue lag, playback lag, sessions, streams, errors.
import { ErrorCode } from "@microturn/protocol";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { SessionObserver } from "./session/interaction-session.js";
import type { MoveResult } from "./session/session-hub.js";

const MS_BUCKETS = [0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000];

export class SidecarMetrics {
  readonly registry = new Registry();
  private readonly appendMs = new Histogram({ name: "microturn_append_latency_ms", help: "Engine time to append one input chunk, ms", buckets: MS_BUCKETS, registers: [this.registry] });
  private readonly turnMs = new Histogram({ name: "microturn_turn_latency_ms", help: "Whole micro-turn (append + output), ms", buckets: MS_BUCKETS, registers: [this.registry] });
  private readonly rtf = new Histogram({
    name: "microturn_real_time_factor",
    help: "Micro-turn compute time / input time covered; above 1 the engine falls behind",
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 5],
    registers: [this.registry],
  });
  private readonly lagMs = new Histogram({ name: "microturn_queue_lag_ms", help: "Input time waiting in a session's queue after a micro-turn, ms", buckets: [0, 200, 400, 1000, 2000, 5000, 10000], registers: [this.registry] });
  private readonly playbackLagMs = new Histogram({
    name: "microturn_playback_lag_ms",
    help: "Output produced but not yet played at each client playback ack, ms",
    buckets: [0, 200, 500, 1000, 2000, 5000, 10000],
    registers: [this.registry],
  });
  private readonly chunks = new Counter({ name: "microturn_chunks_total", help: "Input chunks processed", registers: [this.registry] });
  private readonly errors = new Counter({ name: "microturn_errors_total", help: "Session errors sent to clients, by code", labelNames: ["code"], registers: [this.registry] });
  private readonly rollovers = new Counter({ name: "microturn_context_rollovers_total", help: "Sessions that reached the engine's capacity and went on in a fresh engine session", registers: [this.registry] });
  private readonly streams = new Gauge({ name: "microturn_streams", help: "Open Converse streams (gRPC and WebSocket)", registers: [this.registry] });
  /** Promise rejections no code handled: bugs, counted and logged instead of ending every session. */
  readonly unhandledRejections = new Counter({
    name: "microturn_unhandled_rejections_total",
    help: "Promise rejections no code handled (bugs; each is logged with its stack)",
    registers: [this.registry],
  });

  constructor(withProcessMetrics = true) {
    if (withProcessMetrics) collectDefaultMetrics({ register: this.registry, prefix: "microturn_" });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }

  streamOpened(): void {
    this.streams.inc();
  }

  streamClosed(): void {
    this.streams.dec();
  }

  private readonly tlsReloads = new Counter({
    name: "microturn_tls_reloads_total",
    help: "TLS material read again (SIGHUP or --tls-reload-ms) and served (ok), or refused with the old kept (failed)",
    labelNames: ["result"],
    registers: [this.registry],
  });
  private readonly tlsExpiry = new Gauge({
    name: "microturn_tls_certificate_expiry_timestamp_seconds",
    help: "When the served certificate expires (Unix time): alert well before it",
    registers: [this.registry],
  });

  private readonly moves = new Counter({
    name: "microturn_session_moves_total",
    help: "Sessions moved between sidecars: taken from a peer (in) or handed to one (out), and whether the move worked (handed_again: handed out once more after the first taker failed to confirm it within its lease)",
    labelNames: ["direction", "result"],
    registers: [this.registry],
  });

  private readonly moveMs = new Histogram({
    name: "microturn_session_move_ms",
    help: "Time a move took on this sidecar, ms: taking a session in (the Take call and the rebuild) or handing one out (from the Take until the taker confirmed it)",
    labelNames: ["direction"],
    buckets: [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000],
    registers: [this.registry],
  });

  sessionMoved(direction: "in" | "out", result: MoveResult, ms?: number): void {
    this.moves.inc({ direction, result });
    if (ms !== undefined) observeFinite(this.moveMs.labels(direction), ms);
  }

  /** The certificate now served (at start and after each reload). */
  tlsServing(validTo: Date): void {
    this.tlsExpiry.set(validTo.getTime() / 1000);
  }

  tlsReloaded(result: "ok" | "failed"): void {
    this.tlsReloads.inc({ result });
  }

  /** Sessions and background tasks, read from the hub at each scrape. */
  holding(read: { readonly size: number; readonly backgroundTasks: number }): void {
    new Gauge({
      name: "microturn_sessions",
      help: "Live sessions, attached or waiting for resume",
      registers: [this.registry],
      collect() {
        this.set(read.size);
      },
    });
    new Gauge({
      name: "microturn_background_tasks",
      help: "Background tasks running, over all sessions",
      registers: [this.registry],
      collect() {
        this.set(read.backgroundTasks);
      },
    });
  }

  /** Reports the CPU time a SpinWait spent keeping the loop awake. */
  spinTime(read: () => number): void {
    new Counter({
      name: "microturn_spin_seconds_total",
      help: "Time the event loop spun awake waiting for chunks that were due (--spin-window-ms): CPU bought for latency",
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc(read() / 1000);
      },
    });
  }

  /** The hooks sessions call on every micro-turn and error. */
  observer(): SessionObserver {
    // Label-less children, bound once: observing through them skips a closure and a labels object per call.
    const [appendMs, turnMs, rtf, lagMs, playbackLagMs] = [this.appendMs, this.turnMs, this.rtf, this.lagMs, this.playbackLagMs].map((h) => h.labels());
    return {
      // prom-client throws on NaN or Infinity: a figure an engine reported wrong is left out, never the turn.
      turn: (sample) => {
        observeFinite(appendMs!, sample.appendMs);
        observeFinite(turnMs!, sample.turnMs);
        observeFinite(rtf!, sample.turnMs / sample.inputMs);
        observeFinite(lagMs!, sample.queueLagMs);
        this.chunks.inc();
      },
      error: (code) => this.errors.inc({ code: ErrorCode[code] ?? String(code) }),
      rollover: () => this.rollovers.inc(),
      playback: ({ lagMs }) => observeFinite(playbackLagMs!, lagMs),
    };
  }
}

function observeFinite(histogram: { observe(value: number): void }, value: number): void {
  if (Number.isFinite(value)) histogram.observe(value);
}
