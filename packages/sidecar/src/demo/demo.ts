// `microturn demo` (and `npm start`): a sidecar on the embedded engine and a
// scripted client that talks to it over real gRPC at real-time pace for about
// 20 s — text, a delegated background task, a barge-in — with a live timeline.
import * as grpc from "@grpc/grpc-js";
import {
  ClientEvent,
  DeliveryMode,
  InteractionClient,
  PROTOCOL_VERSION,
  TaskStatus,
  UnsupportedInput,
  type ServerEvent,
  type SessionConfig,
} from "@microturn/protocol";
import { startSidecar } from "../app.js";
import type { SidecarConfig } from "../config.js";
import { createLogger } from "../logger.js";
import { LatencyStats } from "../session/latency-stats.js";
import { DEMO_SCRIPT, DEMO_TICKS, type DemoStep } from "./script.js";
import { Timeline } from "./timeline.js";
import { waitAtMost } from "../timers.js";

const TICK_MS = 200;

export async function runDemo(config: SidecarConfig, out: NodeJS.WritableStream = process.stdout): Promise<number> {
  const timeline = new Timeline(out);
  timeline.banner("microturn demo: sidecar + embedded llama.cpp engine + scripted client over gRPC");
  const sidecar = await startSidecar(config, { logger: createLogger("warn") });
  const caps = sidecar.engine.capabilities;
  timeline.note(`sidecar listening on ${sidecar.server.grpcAddress}; engine ${caps.engine}, model ${caps.modelId}`);
  if (caps.randomWeights) {
    timeline.note("the model is the tiny RANDOM-WEIGHT test model the project writes itself: its output is noise.");
    timeline.note("point MICROTURN_MODEL at a real GGUF (e.g. a Qwen3 MoE) for real answers.");
  }
  timeline.note(`${DEMO_TICKS} chunks of ${TICK_MS} ms at real-time pace; background model: ${config.background}`);

  const client = new InteractionClient(sidecar.server.grpcAddress, grpc.credentials.createInsecure());
  const call = client.converse();
  const events: ServerEvent[] = [];
  const turnLatency = new LatencyStats();
  let lastOutput: { startMs: number; durationMs: number } | undefined;
  let tasksDone = 0;
  call.on("data", (event: ServerEvent) => {
    events.push(event);
    const e = event.event;
    if (!e) return;
    if (e.$case === "output") {
      turnLatency.add(e.value.latencyMs);
      if (!e.value.silent) lastOutput = { startMs: e.value.startMs, durationMs: e.value.durationMs };
      timeline.output(e.value);
    } else if (e.$case === "background") {
      if (e.value.status === TaskStatus.TASK_STATUS_DONE && e.value.deliveredAtSeq === 0) tasksDone++;
      timeline.background(e.value);
    } else if (e.$case === "toolCall") {
      timeline.toolCall(e.value);
      // The app's side of get_weather: a canned forecast for whatever city the model wrote.
      let city: unknown;
      try {
        city = (JSON.parse(e.value.argumentsJson || "{}") as { city?: unknown }).city;
      } catch {
        city = undefined;
      }
      const result = JSON.stringify({ city: typeof city === "string" ? city : "", sky: "sunny", celsius: 21 });
      timeline.input(Number(e.value.seq) * TICK_MS, `app: get_weather → ${result}`);
      send({ $case: "toolResult", value: { callId: e.value.callId, outputJson: result, isError: false } });
    } else if (e.$case === "error") timeline.error(e.value);
  });
  const ended = new Promise<void>((resolve) => {
    call.on("end", resolve);
    call.on("error", () => resolve());
  });
  const send = (event: ClientEvent["event"]) => call.write(ClientEvent.fromPartial({ event }));

  const sessionConfig: Partial<SessionConfig> = {
    instructions: "You are a friendly voice assistant. Keep answers short. Use the delegate tool for anything that needs research.",
    defaultDelivery: DeliveryMode.DELIVERY_MODE_WHEN_IDLE,
    unsupportedInput: UnsupportedInput.UNSUPPORTED_INPUT_NOTE,
    tools: [{ name: "get_weather", description: "Weather for a city", parametersJson: '{"type":"object","properties":{"city":{"type":"string","maxLength":24}},"required":["city"]}', timeoutMs: 2000 }],
    chunkDurationMs: TICK_MS,
    record: config.recordDir !== "",
  };
  send({ $case: "start", value: { protocolVersion: PROTOCOL_VERSION, config: sessionConfig as SessionConfig } });

  const t0 = performance.now();
  let playedUpToMs = 0;
  for (let seq = 0; seq < DEMO_TICKS; seq++) {
    const step: DemoStep | undefined = DEMO_SCRIPT[seq];
    const startMs = seq * TICK_MS;
    if (step?.delegate) {
      timeline.input(startMs, `delegate → background: "${step.delegate}"`);
      send({ $case: "delegate", value: { taskId: "", task: step.delegate, delivery: DeliveryMode.DELIVERY_MODE_WHEN_IDLE, timeoutMs: 60_000 } });
    }
    if (step?.interrupt && lastOutput) {
      // Heard: 120 ms of the newest output, and never less than the last playback ack said.
      const played = Math.max(playedUpToMs, lastOutput.startMs + Math.min(lastOutput.durationMs, 120));
      timeline.input(startMs, `barge-in: user heard output up to ${(played / 1000).toFixed(1)} s; the rest is rewound`);
      send({ $case: "interrupt", value: { playedUpToMs: played } });
    }
    if (step?.text) timeline.input(startMs, `user: "${step.text}"`);
    send({ $case: "input", value: { seq, startMs, durationMs: TICK_MS, text: step?.text ?? "", frames: [], patches: [], userSpeaking: Boolean(step?.text), toolChoice: step?.toolChoice ?? "" } });
    // The scripted listener plays output in real time: by this chunk's start it heard what came before.
    playedUpToMs = startMs;
    send({ $case: "playback", value: { playedUpToMs } });
    const due = t0 + (seq + 1) * TICK_MS;
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, due - performance.now())));
  }
  const metricsBefore = [...sidecar.hub.sessions()][0]?.session.metrics();
  send({ $case: "end", value: { reason: "demo finished" } });
  call.end();
  await waitAtMost(ended, 10_000);
  client.close();
  await sidecar.shutdown();

  const recordingPath = events.flatMap((e) => (e.event?.$case === "ended" ? [e.event.value.recordingPath] : []))[0] ?? "";
  const outputs = events.filter((e) => e.event?.$case === "output").length;
  const errors = events.filter((e) => e.event?.$case === "error").length;
  timeline.summary({
    chunks: DEMO_TICKS,
    outputs,
    p50: turnLatency.quantile(0.5),
    p95: turnLatency.quantile(0.95),
    realTimeFactor: metricsBefore?.realTimeFactor ?? 0,
    appendP50: metricsBefore?.appendP50Ms ?? 0,
    positionTokens: metricsBefore?.positionTokens ?? 0,
    backgroundDone: tasksDone,
    toolCalls: events.filter((e) => e.event?.$case === "toolCall").length,
    errors,
    randomWeights: caps.randomWeights,
    recordingPath,
  });
  return outputs === DEMO_TICKS ? 0 : 1;
}
