// Background delegation and tool calls end to end: a whole sidecar (startSidecar)
// on a scripted engine whose output carries tool-call markup, a streaming
// OpenAI-compatible background server, and a gRPC client playing the app.
import { DeliveryMode, ErrorCode, TaskStatus } from "@microturn/protocol";
import { afterEach, describe, expect, it } from "vitest";
import { startSidecar, type Sidecar } from "../src/app.js";
import type { EngineChunk } from "../src/engines/engine.js";
import { WHEN_IDLE_MAX_WAIT_MS } from "../src/session/context-deliveries.js";
import { startOpenAiTestServer, type OpenAiTestServer } from "../src/background/testing/openai-server.js";
import { loadConfig } from "../src/config.js";
import { createLogger } from "../src/logger.js";
import { FakeEngine, type FakeEngineOptions } from "./helpers/fake-engine.js";
import { TestClient } from "./helpers/test-client.js";

let sidecar: Sidecar | undefined;
let background: OpenAiTestServer | undefined;
const clients: TestClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await sidecar?.shutdown();
  await background?.close();
  sidecar = undefined;
  background = undefined;
});

async function start(reply: (chunk: EngineChunk) => string, backgroundUrl?: string, engineOptions: Omit<FakeEngineOptions, "reply"> = {}, extraFlags: string[] = []) {
  const engine = new FakeEngine({ reply, ...engineOptions });
  const flags = ["--port", "0", "--metrics-port=-1", "--drain-ms", "0", "--tool-timeout-ms", "2000", "--max-output-tokens", "400", ...extraFlags];
  if (backgroundUrl) flags.push("--background-url", backgroundUrl);
  else flags.push("--background", "none");
  sidecar = await startSidecar(loadConfig(flags, {}), { engine, logger: createLogger("error") });
  const client = new TestClient(sidecar.server.grpcAddress);
  clients.push(client);
  return { engine, client };
}

const call = (name: string, args: unknown) => `<tool_call>${JSON.stringify({ name, arguments: args })}</tool_call>`;

describe("background delegation", () => {
  it("streams a model-delegated task and weaves the result in when the user is idle", async () => {
    background = await startOpenAiTestServer({ kind: "stream", content: ["Three ", "places: ", "A, B, C."], delayMs: 5 });
    const { engine, client } = await start((chunk) => (chunk.seq === 0 ? `ok ${call("delegate", { task: "find dinner", delivery: "when_idle" })}` : ""), background.url);
    client.start({ instructions: "be helpful" });
    client.input(0, "find me dinner");
    await client.waitFor(() => client.of("background").some((b) => b.status === TaskStatus.TASK_STATUS_DONE && b.deliveredAtSeq === 0), "task done");
    const done = client.of("background").find((b) => b.status === TaskStatus.TASK_STATUS_DONE)!;
    expect(done).toMatchObject({ content: "Three places: A, B, C.", fromModel: true, task: "find dinner", delivery: DeliveryMode.DELIVERY_MODE_WHEN_IDLE });
    // Visible output has no tool-call markup.
    expect(client.of("output")[0]!.text).toBe("ok ");
    // The background model got the whole conversation plus the task.
    const messages = JSON.stringify(background.requests[0]!.body.messages);
    expect(messages).toContain("find me dinner");
    expect(messages).toContain("find dinner");
    // A chunk where the user speaks does not receive it; the next quiet one does.
    client.input(1, "still talking");
    client.input(2, "");
    await client.waitFor(() => client.of("background").some((b) => b.deliveredAtSeq > 0), "delivery");
    expect(client.of("background").find((b) => b.deliveredAtSeq > 0)!.deliveredAtSeq).toBe(2);
    expect(engine.sessions[0]!.appended[2]!.context![0]!.text).toContain("Three places: A, B, C.");
    // The system prompt announced the tools, delegate included.
    expect(engine.sessions[0]!.appended.length).toBe(3);
  });

  it("delegates from the client, cancels, and reports a background model that is down", async () => {
    background = await startOpenAiTestServer({ kind: "hang" });
    const { client } = await start(() => "", background.url);
    client.start();
    client.send({ $case: "delegate", value: { taskId: "t1", task: "slow job", delivery: DeliveryMode.DELIVERY_MODE_SILENT, timeoutMs: 0 } });
    await client.waitFor(() => background!.inFlight === 1, "request in flight");
    // /metrics counts the session and its running task (the gauges are read at each scrape).
    expect(await sidecar!.metrics.render()).toMatch(/^microturn_sessions 1\n[\s\S]*^microturn_background_tasks 1$/m);
    client.send({ $case: "cancelTask", value: { taskId: "t1" } });
    await client.waitFor(() => client.of("background").some((b) => b.status === TaskStatus.TASK_STATUS_CANCELLED), "cancelled");
    expect(await sidecar!.metrics.render()).toMatch(/^microturn_background_tasks 0$/m);
    client.send({ $case: "cancelTask", value: { taskId: "nope" } });
    await client.waitCount("error", 1);
    expect(client.of("error")[0]!.code).toBe(ErrorCode.ERROR_CODE_NOT_FOUND);

    background.setScript({ kind: "status", status: 503, message: "overloaded" });
    client.send({ $case: "delegate", value: { taskId: "t2", task: "another", delivery: DeliveryMode.DELIVERY_MODE_INTERRUPT, timeoutMs: 0 } });
    await client.waitFor(() => client.of("background").some((b) => b.taskId === "t2" && b.status === TaskStatus.TASK_STATUS_FAILED), "failed");
    expect(client.of("background").find((b) => b.taskId === "t2" && b.status === TaskStatus.TASK_STATUS_FAILED)!.errorMessage).toMatch(/503|overloaded/);
    // The conversation never stalled.
    client.input(0, "");
    await client.waitCount("output", 1);
  });
});

describe("background tasks of many sessions", () => {
  it("runs every session's tasks at once up to each session's cap (8 pooled connections held the ninth back)", async () => {
    background = await startOpenAiTestServer({ kind: "hang" });
    const { client } = await start(() => "", background.url);
    const all = [client, ...Array.from({ length: 4 }, () => new TestClient(sidecar!.server.grpcAddress))];
    clients.push(...all.slice(1));
    for (const [s, c] of all.entries()) {
      c.start();
      for (const t of [0, 1]) c.send({ $case: "delegate", value: { taskId: `s${s}t${t}`, task: "long job", delivery: DeliveryMode.DELIVERY_MODE_SILENT, timeoutMs: 0 } });
    }
    await client.waitFor(() => background!.inFlight === 10, "10 requests at the background model");
  });
});

describe("delegations the sidecar refuses", () => {
  it("fails the client's task by its id when the queue is full (its handle waited until the session closed), not a task whose id is in use", async () => {
    background = await startOpenAiTestServer({ kind: "hang" });
    const { client } = await start(() => "", background.url, {}, ["--background-max-concurrent", "1"]);
    client.start();
    // One runs, 32 wait (the queue's bound), the next is refused.
    for (let i = 0; i <= 33; i++) client.send({ $case: "delegate", value: { taskId: `t${i}`, task: `job ${i}`, delivery: DeliveryMode.DELIVERY_MODE_SILENT, timeoutMs: 0 } });
    await client.waitFor(() => client.of("background").some((b) => b.taskId === "t33" && b.status === TaskStatus.TASK_STATUS_FAILED), "t33 failed");
    expect(client.of("background").find((b) => b.taskId === "t33")!.errorMessage).toMatch(/already waiting/);
    await client.waitCount("error", 1);
    expect(client.of("error")[0]).toMatchObject({ code: ErrorCode.ERROR_CODE_RESOURCE_EXHAUSTED });
    // Asking again under the id of the running task is refused, and that task is not reported failed.
    client.send({ $case: "delegate", value: { taskId: "t0", task: "again", delivery: DeliveryMode.DELIVERY_MODE_SILENT, timeoutMs: 0 } });
    await client.waitCount("error", 2);
    expect(client.of("background").filter((b) => b.taskId === "t0").map((b) => b.status)).not.toContain(TaskStatus.TASK_STATUS_FAILED);
  });

  it("tells the model its delegation was refused (it waited for a task that never started)", async () => {
    background = await startOpenAiTestServer({ kind: "hang" });
    const { engine, client } = await start((chunk) => (chunk.seq === 0 ? call("delegate", { task: "find dinner", delivery: "someday" }) : ""), background.url);
    client.start();
    client.input(0, "find me dinner");
    await client.waitCount("error", 1);
    expect(client.of("error")[0]).toMatchObject({ code: ErrorCode.ERROR_CODE_INVALID_ARGUMENT, seq: 0 });
    client.input(1, "");
    await client.waitCount("output", 2);
    expect(engine.sessions[0]!.appended[1]!.context!.map((c) => c.text)).toEqual([expect.stringMatching(/^\[tool delegate result\] error: .*delivery/)]);
    expect(background.requests).toHaveLength(0);
  });
});

describe("a session that ends with a task running", () => {
  it("sends the task's CANCELLED before SessionEnded, and nothing after it", async () => {
    background = await startOpenAiTestServer({ kind: "hang" });
    const { client } = await start(() => "", background.url);
    client.start();
    client.send({ $case: "delegate", value: { taskId: "t1", task: "slow job", delivery: DeliveryMode.DELIVERY_MODE_SILENT, timeoutMs: 0 } });
    await client.waitFor(() => background!.inFlight === 1, "request in flight");
    client.send({ $case: "end", value: { reason: "bye" } });
    await client.waitCount("ended", 1);
    await new Promise((r) => setTimeout(r, 50));
    const order = client.events.map((e) => (e.event?.$case === "background" ? `background:${TaskStatus[e.event.value.status]}` : e.event?.$case));
    expect(order.slice(-2)).toEqual(["background:TASK_STATUS_CANCELLED", "ended"]);
  });
});

describe("when_idle delivery", () => {
  it("waits for a pause, but at most WHEN_IDLE_MAX_WAIT_MS of input time", async () => {
    background = await startOpenAiTestServer({ kind: "stream", content: ["result"] });
    const { client } = await start(() => "", background.url);
    client.start();
    client.send({ $case: "delegate", value: { taskId: "t1", task: "job", delivery: DeliveryMode.DELIVERY_MODE_WHEN_IDLE, timeoutMs: 0 } });
    await client.waitFor(() => client.of("background").some((b) => b.status === TaskStatus.TASK_STATUS_DONE), "done");
    // The user never pauses: 40 chunks (8 s) of speech.
    for (let seq = 0; seq < 40; seq++) client.input(seq, "talking");
    await client.waitCount("output", 40);
    const delivered = client.of("background").find((b) => b.deliveredAtSeq > 0)!;
    expect(delivered.deliveredAtSeq).toBe(WHEN_IDLE_MAX_WAIT_MS / 200);
  });
});

describe("tools", () => {
  it("round-trips a client tool call and feeds the result to the next micro-turn", async () => {
    const { engine, client } = await start((chunk) => (chunk.seq === 0 ? call("get_weather", { city: "Lisbon" }) : ""));
    client.start({ tools: [{ name: "get_weather", description: "weather", parametersJson: '{"type":"object"}', timeoutMs: 2000 }] });
    client.input(0, "weather?");
    await client.waitCount("toolCall", 1);
    const tc = client.of("toolCall")[0]!;
    expect(tc).toMatchObject({ name: "get_weather", seq: 0 });
    expect(JSON.parse(tc.argumentsJson)).toEqual({ city: "Lisbon" });
    client.send({ $case: "toolResult", value: { callId: tc.callId, outputJson: '{"sky":"sunny"}', isError: false } });
    await new Promise((r) => setTimeout(r, 50));
    client.input(1, "");
    await client.waitCount("output", 2);
    expect(engine.sessions[0]!.appended[1]!.context!.map((c) => c.text).join()).toContain("sunny");
    // An unknown call id is a typed error; the session goes on.
    client.send({ $case: "toolResult", value: { callId: "bogus", outputJson: "{}", isError: false } });
    await client.waitCount("error", 1);
    expect(client.of("error")[0]!.code).toBe(ErrorCode.ERROR_CODE_NOT_FOUND);
  });

  it("runs a server-side tool without the client", async () => {
    const { engine, client } = await start((chunk) => (chunk.seq === 0 ? call("calculator", { expression: "6*7" }) : ""));
    client.start();
    client.input(0, "what is 6 times 7");
    await client.waitCount("output", 1);
    await new Promise((r) => setTimeout(r, 50));
    client.input(1, "");
    await client.waitCount("output", 2);
    expect(client.of("toolCall")).toHaveLength(0);
    expect(engine.sessions[0]!.appended[1]!.context!.map((c) => c.text).join()).toContain("42");
  });

  it("puts the tool-call parser back with a failed answer taken back: text it held is held again", async () => {
    let failed = false;
    const { engine, client } = await start((chunk) => ["ok <", "bbb", "c"][chunk.seq] ?? "", undefined, {
      failAfter: (chunk) => (chunk.seq === 1 && !failed ? ((failed = true), 1) : undefined),
    });
    client.start();
    client.input(0, "x");
    client.input(1, "y");
    client.input(2, "z");
    await client.waitCount("output", 2);
    // The failed answer let the "<" go with its "b"; both are gone from the model's memory, so the "<" waits again.
    expect(client.of("output").map((o) => [o.seq, o.text])).toEqual([
      [0, "ok "],
      [2, "<c"],
    ]);
    expect(client.of("error")[0]).toMatchObject({ seq: 1 });
    expect(engine.sessions[0]!.text.endsWith("<0>xok <<1>y<2>zc")).toBe(true);
  });

  it("reports a malformed tool call from the model without stalling", async () => {
    const { client } = await start((chunk) => (chunk.seq === 0 ? "<tool_call>{not json</tool_call>" : "fine"));
    client.start();
    client.input(0, "");
    client.input(1, "");
    await client.waitCount("output", 2);
    expect(client.of("error")[0]!.code).toBe(ErrorCode.ERROR_CODE_INVALID_ARGUMENT);
    expect(client.of("output")[1]!.text).toBe("fine");
  });
});

describe("results in the model's memory", () => {
  const tools = [{ name: "get_weather", description: "weather", parametersJson: '{"type":"object"}', timeoutMs: 5000 }];
  const answerTheCall = async (client: TestClient) => {
    await client.waitCount("toolCall", 1);
    client.send({ $case: "toolResult", value: { callId: client.of("toolCall")[0]!.callId, outputJson: '{"sky":"sunny"}', isError: false } });
    // The result waits for the next boundary.
    await new Promise((r) => setTimeout(r, 50));
  };

  it("keeps the results a turn gave the model through a barge-in's re-append (they were once appended again without them)", async () => {
    const { engine, client } = await start((chunk) => (chunk.seq === 0 ? call("get_weather", {}) : chunk.seq === 1 ? "abcdefghij" : ""));
    client.start({ tools });
    client.input(0, "weather?");
    client.input(1, "and?");
    await client.waitCount("output", 2);
    // Answered after seq 1's turn: the result goes in with seq 2.
    await answerTheCall(client);
    client.input(2, "later");
    await client.waitCount("output", 3);
    const answer = client.of("output")[1]!;
    expect(answer.text).toBe("abcdefghij");
    // The user heard none of the answer to seq 1: it goes, and seq 2 goes back in after it, with the result it carried.
    client.send({ $case: "interrupt", value: { playedUpToMs: answer.startMs } });
    client.input(3, "");
    await client.waitCount("output", 4);
    expect(engine.sessions[0]!.text).toBe(`<0>weather?${call("get_weather", {})}<1>and?[tool get_weather result] {"sky":"sunny"}<2>later<3>`);
  });

  it("gives the results a turn took to the next one when the turn failed before its input went in (they were lost)", async () => {
    const { engine, client } = await start((chunk) => (chunk.seq === 0 ? call("get_weather", {}) : ""), undefined, { failBefore: (chunk) => chunk.seq === 1 });
    client.start({ tools });
    client.input(0, "weather?");
    await answerTheCall(client);
    client.input(1, "lost");
    await client.waitCount("error", 1);
    expect(client.of("error")[0]).toMatchObject({ seq: 1, code: ErrorCode.ERROR_CODE_INTERNAL });
    client.input(2, "");
    await client.waitCount("output", 2);
    expect(engine.sessions[0]!.text).toBe(`<0>weather?${call("get_weather", {})}[tool get_weather result] {"sky":"sunny"}<2>`);
  });

  it("does not give again the results of a turn that rolled over and then failed mid-answer (the model read them twice)", async () => {
    let capacity = 1 << 20;
    const { engine, client } = await start((chunk) => (chunk.seq === 0 ? call("get_weather", {}) : "hello"), undefined, {
      supportsRewind: false,
      failAfter: (chunk) => (chunk.seq === 1 ? 2 : undefined),
      capacityTokens: () => capacity,
    });
    client.start({ tools });
    client.input(0, `weather? ${"w".repeat(60)}`);
    await answerTheCall(client);
    capacity = 300;
    client.input(1, "");
    await client.waitCount("error", 1);
    capacity = 1 << 20;
    client.input(2, "");
    await client.waitCount("output", 2);
    expect(engine.sessions).toHaveLength(2);
    // The new engine session took seq 1's input with the result; seq 2 comes without it.
    expect(engine.sessions[1]!.text).toBe(`[tool get_weather result] {"sky":"sunny"}<1>he<2>hello`);
  });

  it("gives a result a failed turn gave back to the model once when the next turn rolls over (it was carried and appended)", async () => {
    let capacity = 1 << 20;
    const { engine, client } = await start((chunk) => (chunk.seq === 0 ? call("get_weather", {}) : ""), undefined, {
      failBefore: (chunk) => chunk.seq === 1,
      capacityTokens: () => capacity,
    });
    client.start({ tools });
    client.input(0, `weather? ${"w".repeat(60)}`);
    await answerTheCall(client);
    client.input(1, "lost");
    await client.waitCount("error", 1);
    // Seq 2's turn no longer fits: it rolls over, carrying the conversation, and delivers the result given back.
    capacity = 300;
    client.input(2, "");
    await client.waitCount("output", 2);
    expect(engine.sessions).toHaveLength(2);
    const fresh = engine.sessions[1]!;
    expect(fresh.systemPrompt).toContain("weather?");
    const result = '{"sky":"sunny"}';
    expect(fresh.systemPrompt).not.toContain(result);
    expect(fresh.text).toBe(`[tool get_weather result] ${result}<2>`);
  });
});
