import { ErrorCode } from "@microturn/protocol";
import { describe, expect, it } from "vitest";
import { SidecarMetrics } from "./metrics.js";

describe("SidecarMetrics", () => {
  it("puts what sessions observe into the Prometheus series", async () => {
    const metrics = new SidecarMetrics(false);
    const observer = metrics.observer();
    observer.turn!({ appendMs: 1.5, turnMs: 20, inputMs: 200, queueLagMs: 0 });
    observer.turn!({ appendMs: 2.5, turnMs: 40, inputMs: 200, queueLagMs: 200 });
    observer.playback!({ lagMs: 300 });
    observer.error!(ErrorCode.ERROR_CODE_SEQ_GAP);
    const text = await metrics.render();
    expect(text).toMatch(/^microturn_turn_latency_ms_count 2$/m);
    expect(text).toMatch(/^microturn_turn_latency_ms_sum 60$/m);
    expect(text).toMatch(/^microturn_append_latency_ms_sum 4$/m);
    expect(text).toMatch(/^microturn_real_time_factor_sum 0\.3(0*\d*)?$/m);
    expect(text).toMatch(/^microturn_queue_lag_ms_bucket\{le="200"\} 2$/m);
    expect(text).toMatch(/^microturn_playback_lag_ms_bucket\{le="200"\} 0$/m);
    expect(text).toMatch(/^microturn_playback_lag_ms_bucket\{le="500"\} 1$/m);
    expect(text).toMatch(/^microturn_chunks_total 2$/m);
    expect(text).toMatch(/^microturn_errors_total\{code="ERROR_CODE_SEQ_GAP"\} 1$/m);
  });

  it("leaves out a figure that is not finite instead of throwing out of the turn", async () => {
    const metrics = new SidecarMetrics(false);
    const observer = metrics.observer();
    expect(() => observer.turn!({ appendMs: Number.NaN, turnMs: Number.POSITIVE_INFINITY, inputMs: 200, queueLagMs: 0 })).not.toThrow();
    expect(() => observer.playback!({ lagMs: Number.NaN })).not.toThrow();
    const text = await metrics.render();
    expect(text).toMatch(/^microturn_append_latency_ms_count 0$/m);
    expect(text).toMatch(/^microturn_queue_lag_ms_count 1$/m);
    expect(text).toMatch(/^microturn_chunks_total 1$/m);
  });

  it("reports the time spent spinning for chunks as a counter in seconds", async () => {
    const metrics = new SidecarMetrics(false);
    let spunMs = 1500;
    metrics.spinTime(() => spunMs);
    expect(await metrics.render()).toMatch(/^microturn_spin_seconds_total 1\.5$/m);
    spunMs = 4000;
    expect(await metrics.render()).toMatch(/^microturn_spin_seconds_total 4$/m);
  });
});
