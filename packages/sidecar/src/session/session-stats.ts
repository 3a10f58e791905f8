// The figures a session reports about itself (SessionMetrics): latency
// quantiles, real-time factor, playback lag, and when the next periodic
// metrics event is due (every METRICS_EVERY_MS of input time).
import type { SessionMetrics } from "@microturn/protocol";
import { LatencyStats } from "./latency-stats.js";

/** A metrics event goes out after each this much input time. */
export const METRICS_EVERY_MS = 5000;

/** What the session's other parts know at the moment of a snapshot. */
export type SessionMetricsContext = Pick<SessionMetrics, "queueLagMs" | "positionTokens" | "backgroundTasks" | "contextRollovers">;

export class SessionStats {
  private readonly turnLatency = new LatencyStats();
  private readonly appendLatency = new LatencyStats();
  private turns = 0;
  private computeMs = 0;
  private inputMs = 0;
  private sentAtInputMs = 0;
  /** Output produced past what the client had played, at its last playback ack. */
  playbackLagMs = 0;

  get chunks(): number {
    return this.turns;
  }

  /** A session that moved here counts on from the chunks it took elsewhere (its latency figures start afresh). */
  restoreChunks(chunks: number): void {
    this.turns = chunks;
  }

  recordTurn(turn: { latencyMs: number; turnMs: number; appendMs: number; inputMs: number }): void {
    this.turns++;
    this.computeMs += turn.turnMs;
    this.inputMs += turn.inputMs;
    this.turnLatency.add(turn.latencyMs);
    this.appendLatency.add(turn.appendMs);
  }

  /** True once METRICS_EVERY_MS of input went by since the last metrics event. */
  get due(): boolean {
    return this.inputMs - this.sentAtInputMs >= METRICS_EVERY_MS;
  }

  /** The SessionMetrics to send now; the next periodic one is due METRICS_EVERY_MS of input later. */
  take(context: SessionMetricsContext): SessionMetrics {
    this.sentAtInputMs = this.inputMs;
    return this.snapshot(context);
  }

  snapshot(context: SessionMetricsContext): SessionMetrics {
    const [turnP50Ms, turnP95Ms] = this.turnLatency.quantiles([0.5, 0.95]);
    return {
      chunks: this.turns,
      turnP50Ms: turnP50Ms!,
      turnP95Ms: turnP95Ms!,
      realTimeFactor: this.inputMs > 0 ? this.computeMs / this.inputMs : 0,
      appendP50Ms: this.appendLatency.quantile(0.5),
      playbackLagMs: this.playbackLagMs,
      ...context,
    };
  }
}
