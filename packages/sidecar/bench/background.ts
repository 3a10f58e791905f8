// Costs the background and tool paths add, with no model time: the tool-call
// parser on the micro-turn hot path, building a context package, and the
// start -> first progress -> done overhead of a background task over loopback
// (OpenAI-compatible SSE, and SGLang's native gRPC with client-side tokenization).
// Run: npx tsx packages/sidecar/bench/background.ts [tasks]
import { TaskStatus } from "@microturn/protocol";
import { buildContextPackage, type ConversationEntry } from "../src/background/context-package.js";
import type { BackgroundClient } from "../src/background/client.js";
import { BackgroundManager } from "../src/background/manager.js";
import { OpenAiChatClient } from "../src/background/openai-client.js";
import { SglangGrpcChatClient } from "../src/background/sglang-grpc-client.js";
import { startOpenAiTestServer } from "../src/background/testing/openai-server.js";
import { startSglangGrpcTestServer } from "../src/background/testing/sglang-grpc-server.js";
import { tinyChatTokenizer } from "../src/background/testing/tiny-tokenizer.js";
import { ToolCallParser } from "../src/tools/tool-call-parser.js";

const tasks = Number(process.argv[2] ?? 200);

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}
const fmt = (values: number[]) => {
  const s = [...values].sort((a, b) => a - b);
  return `p50 ${percentile(s, 50).toFixed(3)} ms, p99 ${percentile(s, 99).toFixed(3)} ms`;
};

// 1. Parser: a 200 ms micro-turn carries a few tokens; feed ~4-char deltas.
{
  const turn = 'Okay, let me look that up for you. <tool_call>{"name": "get_time", "arguments": {"timezone": "Europe/Lisbon"}}</tool_call> One moment while I check. ';
  const text = turn.repeat(2_000);
  const deltas: string[] = [];
  for (let i = 0; i < text.length; i += 4) deltas.push(text.slice(i, i + 4));
  const parser = new ToolCallParser();
  const started = performance.now();
  let calls = 0;
  for (const d of deltas) calls += parser.push(d).calls.length;
  const ms = performance.now() - started;
  console.log(`tool-call parser: ${deltas.length} deltas, ${calls} calls, ${((ms * 1000) / deltas.length).toFixed(2)} µs/delta, ${(text.length / 1024 / (ms / 1000)).toFixed(0)} KiB/s`);
}

// 2. Context package from a long conversation (2 000 entries, ~150 KB) into the 24 000-char budget.
const conversation: ConversationEntry[] = Array.from({ length: 2_000 }, (_, i) => ({
  role: i % 2 === 0 ? "user" : "assistant",
  text: `utterance ${i}: ${"words spoken in this micro-turn ".repeat(2)}`,
  startMs: i * 200,
}));
{
  const times: number[] = [];
  for (let i = 0; i < 200; i++) {
    const t = performance.now();
    buildContextPackage(conversation, "Summarise what the user wants.");
    times.push(performance.now() - t);
  }
  console.log(`context package (2000 entries -> 24000 chars): ${fmt(times)}`);
}

async function taskOverhead(label: string, client: BackgroundClient): Promise<void> {
  const manager = new BackgroundManager({ client, maxConcurrent: 1, coalesceMs: 0, coalesceChars: 1 });
  const first: number[] = [];
  const done: number[] = [];
  for (let i = 0; i < tasks + 10; i++) {
    const started = performance.now();
    let firstAt = 0;
    await new Promise<void>((resolve) => {
      const onUpdate = (u: { taskId: string; status: TaskStatus; content: string }) => {
        if (u.taskId !== id) return;
        if (u.status === TaskStatus.TASK_STATUS_RUNNING && u.content !== "" && firstAt === 0) firstAt = performance.now();
        if (u.status >= TaskStatus.TASK_STATUS_DONE) {
          manager.off("update", onUpdate);
          if (u.status !== TaskStatus.TASK_STATUS_DONE) throw new Error(`task ended ${TaskStatus[u.status]}`);
          if (i >= 10) {
            first.push(firstAt - started);
            done.push(performance.now() - started);
          }
          resolve();
        }
      };
      manager.on("update", onUpdate);
      const id = manager.start({ task: "What time is it in Lisbon?", fromModel: true, conversation: conversation.slice(-40) });
    });
  }
  manager.close();
  console.log(`${label}: start -> first content ${fmt(first)}; start -> DONE ${fmt(done)} (${tasks} tasks, 8 content pieces each)`);
}

// 3. Task overhead over the OpenAI-compatible path.
{
  const server = await startOpenAiTestServer({ kind: "stream", content: ["It ", "is ", "ten ", "thirty ", "in ", "Lisbon ", "right ", "now."] });
  const client = new OpenAiChatClient({ baseUrl: server.url });
  await taskOverhead("background task over HTTP/SSE", client);
  await client.close();
  await server.close();
}

// 4. Task overhead over SGLang's native gRPC (client-side chat template + byte-level tokenizer).
{
  const tokenizer = tinyChatTokenizer();
  const reply = (tokenizer as unknown as { tokenizer: { encode(t: string, o: object): { ids: number[] } } }).tokenizer.encode("It is ten thirty in Lisbon right now.", { add_special_tokens: false }).ids;
  const server = await startSglangGrpcTestServer({ kind: "reply", replyIds: reply, idsPerChunk: 5 });
  const client = new SglangGrpcChatClient({ address: server.address, tokenizer });
  const times: number[] = [];
  const messages = buildContextPackage(conversation.slice(-40), "What time is it in Lisbon?");
  for (let i = 0; i < 50; i++) {
    const t = performance.now();
    tokenizer.encodeChat(messages);
    times.push(performance.now() - t);
  }
  console.log(`chat template + tokenize (${messages.reduce((n, m) => n + (m.content?.length ?? 0), 0)} chars, byte-level test vocab): ${fmt(times)}`);
  await taskOverhead("background task over SGLang gRPC", client);
  await client.close();
  await server.close();
}
