// SDK overhead figures: framing + encoding cost per chunk, chunk → output
// round trip over loopback gRPC and WebSocket against the fake sidecar (a
// scripted echo, so this is the SDK + transport, not a model), and the time a
// resume takes after a dropped stream.
// Run: npx tsx packages/sdk/bench/session-roundtrip.ts [chunks]
import { ClientEvent } from "@microturn/protocol";
import { WebSocket, WebSocketServer } from "ws";
import { Microturn, type WebSocketConstructor } from "../src/index.js";
import { InputFramer } from "../src/internal/input-framer.js";
import { PcmResampler, toInt16 } from "../src/internal/pcm.js";
import { startFakeSidecar } from "../src/testing.js";

const chunks = Number(process.argv[2] ?? 500);

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function report(name: string, values: number[], unit: string): void {
  const fmt = (v: number): string => v.toFixed(unit === "µs" ? 1 : 3);
  console.log(`${name.padEnd(44)} n=${values.length}  p50 ${fmt(percentile(values, 50))} ${unit}  p95 ${fmt(percentile(values, 95))} ${unit}  p99 ${fmt(percentile(values, 99))} ${unit}`);
}

function benchFraming(): void {
  const framer = new InputFramer();
  const resampler = new PcmResampler(48_000, 16_000);
  const audio = Float32Array.from({ length: 9600 }, (_, i) => 0.3 * Math.sin(i / 10));
  const costs: number[] = [];
  for (let i = 0; i < chunks * 4; i++) {
    const start = performance.now();
    framer.addAudio(resampler.push(toInt16(audio)));
    framer.addText("word ");
    ClientEvent.encode({ eventId: "", event: { $case: "input", value: framer.cut() } }).finish();
    costs.push((performance.now() - start) * 1000);
  }
  report("frame+resample+encode 200 ms of 48 kHz audio", costs.slice(chunks), "µs");
}

async function benchRoundTrip(label: string, client: Microturn): Promise<void> {
  const session = await client.connect();
  const latencies: number[] = [];
  for (let i = 0; i < chunks; i++) {
    const start = performance.now();
    const answered = new Promise<void>((resolve) => session.once("output", () => resolve()));
    session.sendChunk({ text: "x", audio: { samples: new Int16Array(3200), sampleRateHz: 16_000 } });
    await answered;
    latencies.push(performance.now() - start);
  }
  await session.close();
  report(`chunk → output round trip, ${label}`, latencies.slice(Math.min(50, chunks / 10)), "ms");
}

async function benchResume(url: string, fake: Awaited<ReturnType<typeof startFakeSidecar>>): Promise<void> {
  const session = await new Microturn({ url, clock: "manual", reconnect: { initialDelayMs: 1, maxDelayMs: 1 } }).connect();
  const times: number[] = [];
  for (let i = 0; i < 30; i++) {
    session.sendChunk({ text: String(i) });
    await fake.waitFor(() => fake.session().accepted.length === i + 1);
    const start = performance.now();
    const back = new Promise<void>((resolve) => session.once("reconnected", () => resolve()));
    fake.dropStream();
    await back;
    times.push(performance.now() - start);
  }
  await session.close();
  report("drop → resumed (gRPC, 1 ms backoff)", times, "ms");
}

async function main(): Promise<void> {
  console.log(`node ${process.version}, ${chunks} chunks`);
  benchFraming();
  const fake = await startFakeSidecar({ webSocketServer: WebSocketServer });
  try {
    await benchRoundTrip("gRPC loopback", new Microturn({ url: fake.url, clock: "manual" }));
    await benchRoundTrip("WebSocket loopback", new Microturn({ url: fake.wsUrl, clock: "manual", WebSocket: WebSocket as unknown as WebSocketConstructor }));
    await benchResume(fake.url, fake);
  } finally {
    await fake.close();
  }
}

await main();
