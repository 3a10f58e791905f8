// Overhead of one micro-turn on the sglang-http path (engine adapter -> SDK
// SglangClient -> HTTP/SSE over loopback -> fake SGLang), with no model time:
// what the sidecar adds on top of SGLang per 200 ms chunk.
// Run: npx tsx packages/sidecar/bench/sglang-http-turn.ts [turns] [outputTokens]
import { FakeSglangServer } from "@microturn/sdk/testing";
import { createSglangHttpEngine } from "../src/engines/sglang-http/index.js";

const turns = Number(process.argv[2] ?? 500);
const outputTokens = Number(process.argv[3] ?? 8);

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const server = await FakeSglangServer.start({ maxReqInputLen: 1_000_000, respond: () => "x".repeat(outputTokens * 2) });
const engine = await createSglangHttpEngine({ url: server.url });
const session = await engine.openSession();
const turnMs: number[] = [];
const firstMs: number[] = [];
const warmup = Math.min(50, Math.floor(turns / 10));
for (let seq = 0; seq < turns + warmup; seq += 1) {
  for await (const out of session.append({ seq, startMs: seq * 200, durationMs: 200, text: "word " }, { maxOutputTokens: outputTokens })) {
    if (out.type === "done" && seq >= warmup) {
      turnMs.push(out.done.turnMs);
      firstMs.push(out.done.appendMs);
    }
  }
}
await engine.dispose();
await server.close();

for (const [name, values] of [["turn", turnMs], ["first event", firstMs]] as const) {
  const sorted = [...values].sort((a, b) => a - b);
  console.log(
    `${name.padEnd(12)} p50 ${percentile(sorted, 50).toFixed(2)} ms  p95 ${percentile(sorted, 95).toFixed(2)} ms  p99 ${percentile(sorted, 99).toFixed(2)} ms  (n=${sorted.length}, ${outputTokens} output tokens = ${outputTokens} SSE events per turn)`,
  );
}
