import { DeliveryMode, TaskStatus, type BackgroundUpdate } from "@microturn/protocol";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { registerBuiltinTools } from "../tools/builtins.js";
import { ServerToolRegistry } from "../tools/registry.js";
import { BackgroundError } from "./errors.js";
import { BackgroundManager, type BackgroundManagerOptions } from "./manager.js";
import { OpenAiChatClient } from "./openai-client.js";
import { startOpenAiTestServer, type OpenAiTestServer } from "./testing/openai-server.js";

const conversation = [
  { role: "user" as const, text: "What's 17 times 23, and plan my Sunday?", startMs: 4_200 },
  { role: "assistant" as const, text: "Let me work on that.", startMs: 5_000 },
];

function collectUpdates(manager: BackgroundManager): BackgroundUpdate[] {
  const updates: BackgroundUpdate[] = [];
  manager.on("update", (u) => updates.push(u));
  return updates;
}

function terminal(updates: BackgroundUpdate[], taskId: string, timeoutMs = 5_000): Promise<BackgroundUpdate> {
  const done = new Set([TaskStatus.TASK_STATUS_DONE, TaskStatus.TASK_STATUS_FAILED, TaskStatus.TASK_STATUS_CANCELLED, TaskStatus.TASK_STATUS_TIMED_OUT]);
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const poll = () => {
      const found = updates.find((u) => u.taskId === taskId && done.has(u.status));
      if (found !== undefined) resolve(found);
      else if (Date.now() - started > timeoutMs) reject(new Error(`task ${taskId} did not finish`));
      else setTimeout(poll, 5);
    };
    poll();
  });
}

const statuses = (updates: BackgroundUpdate[], taskId: string) => updates.filter((u) => u.taskId === taskId).map((u) => TaskStatus[u.status]);

describe("BackgroundManager", () => {
  let server: OpenAiTestServer;
  let client: OpenAiChatClient;
  const managers: BackgroundManager[] = [];
  const make = (options: Partial<BackgroundManagerOptions> = {}) => {
    const manager = new BackgroundManager({ client, ...options });
    managers.push(manager);
    return manager;
  };
  beforeAll(async () => {
    server = await startOpenAiTestServer();
    client = new OpenAiChatClient({ baseUrl: server.url, headersTimeoutMs: 2_000, bodyTimeoutMs: 2_000 });
  });
  afterEach(() => {
    for (const m of managers.splice(0)) m.close();
  });
  afterAll(async () => {
    await client.close();
    await server.close();
  });

  it("runs a task: RUNNING, partial content, then DONE with the whole result", async () => {
    server.setScript({ kind: "stream", content: ["Sunday: ", "brunch, ", "a walk, ", "a film."] });
    const manager = make({ coalesceMs: 1_000, coalesceChars: 1 });
    const updates = collectUpdates(manager);
    const id = manager.start({ task: "Plan Sunday", fromModel: true, conversation, delivery: DeliveryMode.DELIVERY_MODE_SILENT });
    expect(updates).toEqual([]); // nothing is emitted inside start()
    const last = await terminal(updates, id);
    expect(last).toMatchObject({ status: TaskStatus.TASK_STATUS_DONE, content: "Sunday: brunch, a walk, a film.", delivery: DeliveryMode.DELIVERY_MODE_SILENT, fromModel: true, task: "Plan Sunday", deliveredAtSeq: 0 });
    expect(statuses(updates, id)).toEqual(["TASK_STATUS_RUNNING", "TASK_STATUS_RUNNING", "TASK_STATUS_RUNNING", "TASK_STATUS_RUNNING", "TASK_STATUS_RUNNING", "TASK_STATUS_DONE"]);
    const request = server.requests.at(-1)?.body.messages as Array<{ role: string; content: string }>;
    expect(request[0]?.content).toContain("background model");
    expect(request[1]?.content).toContain("[4.2s] user: What's 17 times 23");
    expect(request[1]?.content.trim().endsWith("Plan Sunday")).toBe(true);
  });

  it("coalesces progress: one update per window, and the parts add up to the result", async () => {
    const pieces = Array.from({ length: 40 }, (_, i) => `w${i} `);
    server.setScript({ kind: "stream", content: pieces, delayMs: 5 });
    const manager = make({ coalesceMs: 80, coalesceChars: 10_000 });
    const updates = collectUpdates(manager);
    const id = manager.start({ task: "Count", fromModel: false, conversation: [] });
    const done = await terminal(updates, id);
    const partials = updates.filter((u) => u.taskId === id && u.status === TaskStatus.TASK_STATUS_RUNNING && u.content !== "");
    expect(partials.length).toBeGreaterThanOrEqual(1);
    expect(partials.length).toBeLessThan(pieces.length / 2);
    expect(partials.map((u) => u.content).join("")).toBe(done.content);
    expect(done.content).toBe(pieces.join(""));
    expect(done.delivery).toBe(DeliveryMode.DELIVERY_MODE_WHEN_IDLE); // the default
  });

  it("flushes early when enough characters wait", async () => {
    server.setScript({ kind: "stream", content: ["aaaaaaaaaa", "bbbbbbbbbb", "cccccccccc"] });
    const manager = make({ coalesceMs: 10_000, coalesceChars: 10 });
    const updates = collectUpdates(manager);
    const id = manager.start({ task: "letters", fromModel: false, conversation: [] });
    await terminal(updates, id);
    expect(updates.filter((u) => u.status === TaskStatus.TASK_STATUS_RUNNING && u.content !== "").map((u) => u.content)).toEqual(["aaaaaaaaaa", "bbbbbbbbbb", "cccccccccc"]);
  });

  it("caps concurrency: excess tasks wait QUEUED and start as others finish", async () => {
    server.setScript({ kind: "stream", content: ["x", "y"], delayMs: 60 });
    const before = server.maxInFlight;
    expect(before).toBeLessThanOrEqual(2);
    const manager = make({ maxConcurrent: 2 });
    const updates = collectUpdates(manager);
    const ids = [1, 2, 3, 4, 5].map((n) => manager.start({ task: `task ${n}`, fromModel: false, conversation: [] }));
    expect(manager.runningCount).toBe(2);
    expect(manager.queuedCount).toBe(3);
    const ends = await Promise.all(ids.map((id) => terminal(updates, id)));
    expect(ends.every((u) => u.status === TaskStatus.TASK_STATUS_DONE)).toBe(true);
    expect(server.maxInFlight).toBe(2);
    expect(statuses(updates, ids[4] as string)[0]).toBe("TASK_STATUS_QUEUED");
    expect(statuses(updates, ids[0] as string)[0]).toBe("TASK_STATUS_RUNNING");
  });

  it("refuses a full queue, a duplicate id and an empty task with typed errors", () => {
    server.setScript({ kind: "hang" });
    const manager = make({ maxConcurrent: 1, maxQueued: 1 });
    manager.start({ taskId: "a", task: "one", fromModel: false, conversation: [] });
    manager.start({ taskId: "b", task: "two", fromModel: false, conversation: [] });
    const code = (fn: () => void) => {
      try {
        fn();
      } catch (err) {
        return BackgroundError.isInstance(err) ? err.code : "other";
      }
      return "none";
    };
    expect(code(() => manager.start({ taskId: "c", task: "three", fromModel: false, conversation: [] }))).toBe("resource_exhausted");
    expect(code(() => manager.start({ taskId: "a", task: "again", fromModel: false, conversation: [] }))).toBe("already_exists");
    expect(code(() => manager.start({ task: "   ", fromModel: false, conversation: [] }))).toBe("invalid_argument");
  });

  it("numbers the tasks that come without an id, per session, skipping ids a client chose", () => {
    server.setScript({ kind: "hang" });
    const manager = make({ maxConcurrent: 4, maxQueued: 4 });
    expect(manager.start({ task: "one", fromModel: true, conversation: [] })).toBe("task_1");
    expect(manager.start({ taskId: "task_2", task: "the client's", fromModel: false, conversation: [] })).toBe("task_2");
    expect(manager.start({ task: "two", fromModel: true, conversation: [] })).toBe("task_3");
    // Another session's manager starts from 1 again: the same conversation replayed names its tasks the same.
    expect(make().start({ task: "one", fromModel: true, conversation: [] })).toBe("task_1");
  });

  it("times a slow task out: TIMED_OUT, and the HTTP call is aborted", async () => {
    server.setScript({ kind: "stream", content: ["slow", "slower"], delayMs: 400 });
    const manager = make();
    const updates = collectUpdates(manager);
    const id = manager.start({ task: "slow one", fromModel: true, conversation: [], timeoutMs: 150 });
    const end = await terminal(updates, id);
    expect(end.status).toBe(TaskStatus.TASK_STATUS_TIMED_OUT);
    expect(end.errorMessage).toContain("150 ms");
    await new Promise((r) => setTimeout(r, 100));
    expect(server.inFlight).toBe(0);
    expect(manager.runningCount).toBe(0);
  });

  it("cancels running and queued tasks; unknown ids are a typed NOT_FOUND error", async () => {
    server.setScript({ kind: "stream", content: ["a", "b", "c"], delayMs: 300 });
    const manager = make({ maxConcurrent: 1 });
    const updates = collectUpdates(manager);
    const running = manager.start({ task: "first", fromModel: false, conversation: [] });
    const queued = manager.start({ task: "second", fromModel: false, conversation: [] });
    await new Promise((r) => setTimeout(r, 50));
    expect(manager.cancel(queued)).toBe(true);
    expect(manager.cancel(running)).toBe(true);
    expect((await terminal(updates, running)).status).toBe(TaskStatus.TASK_STATUS_CANCELLED);
    expect((await terminal(updates, queued)).status).toBe(TaskStatus.TASK_STATUS_CANCELLED);
    expect(statuses(updates, queued)).toEqual(["TASK_STATUS_QUEUED", "TASK_STATUS_CANCELLED"]);
    expect(manager.cancel(running)).toBe(false); // already finished: no-op
    expect(() => manager.cancel("never-was")).toThrow(BackgroundError);
    try {
      manager.cancel("never-was");
    } catch (err) {
      expect(BackgroundError.isInstance(err) && err.code).toBe("not_found");
    }
    await new Promise((r) => setTimeout(r, 100));
    expect(server.inFlight).toBe(0);
  });

  it("cancelAll ends everything", async () => {
    server.setScript({ kind: "hang" });
    const manager = make({ maxConcurrent: 1 });
    const updates = collectUpdates(manager);
    const ids = [manager.start({ task: "a", fromModel: false, conversation: [] }), manager.start({ task: "b", fromModel: false, conversation: [] })];
    manager.cancelAll();
    for (const id of ids) expect((await terminal(updates, id)).status).toBe(TaskStatus.TASK_STATUS_CANCELLED);
    expect(manager.taskIds).toEqual([]);
  });

  it("fails with the reason when the model is down or answers errors, and keeps serving", async () => {
    const down = await startOpenAiTestServer();
    const deadUrl = down.url;
    await down.close();
    const deadClient = new OpenAiChatClient({ baseUrl: deadUrl });
    const manager = make({ client: deadClient });
    const updates = collectUpdates(manager);
    const id = manager.start({ task: "anything", fromModel: true, conversation });
    const end = await terminal(updates, id);
    expect(end.status).toBe(TaskStatus.TASK_STATUS_FAILED);
    expect(end.errorMessage).toContain("ECONNREFUSED");
    await deadClient.close();

    server.setScript({ kind: "status", status: 500, message: "out of memory" });
    const other = make();
    const otherUpdates = collectUpdates(other);
    const failed = await terminal(otherUpdates, other.start({ task: "x", fromModel: false, conversation: [] }));
    expect(failed.errorMessage).toContain("out of memory");
    server.setScript({ kind: "stream", content: ["fine"] });
    expect((await terminal(otherUpdates, other.start({ task: "y", fromModel: false, conversation: [] }))).content).toBe("fine");
  });

  it("runs server-side tools the background model calls, then continues the chat", async () => {
    server.setScript((request) => {
      const last = request.body.messages?.at(-1) as { role: string; content: string } | undefined;
      if (last?.role === "tool") return { kind: "stream", content: [`17 × 23 = ${JSON.parse(last.content).result}.`] };
      return { kind: "stream", content: ["Let me compute. "], toolCalls: [{ id: "call_1", name: "calculator", arguments: '{"expression": "17 * 23"}' }] };
    });
    const tools = registerBuiltinTools(new ServerToolRegistry());
    const manager = make({ tools });
    const updates = collectUpdates(manager);
    const toolEvents: string[] = [];
    manager.on("toolCall", (e) => toolEvents.push(`${e.name} ${e.outcome.outputJson}`));
    const end = await terminal(updates, manager.start({ task: "17 times 23?", fromModel: true, conversation }));
    expect(end.content).toBe("Let me compute. 17 × 23 = 391.");
    expect(toolEvents).toEqual(['calculator {"expression":"17 * 23","result":391}']);
    const second = server.requests.at(-1)?.body;
    expect(second?.messages?.at(-2)).toMatchObject({ role: "assistant", tool_calls: [{ id: "call_1", function: { name: "calculator" } }] });
    expect(second?.messages?.at(-1)).toMatchObject({ role: "tool", tool_call_id: "call_1" });
    expect((server.requests.at(-2)?.body.tools as unknown[]).length).toBe(2);
  });

  it("bounds tool rounds: the last round offers no tools", async () => {
    server.setScript((request) =>
      request.body.tools === undefined ? { kind: "stream", content: ["giving up on tools"] } : { kind: "stream", toolCalls: [{ name: "get_time", arguments: "{}" }] },
    );
    const manager = make({ tools: registerBuiltinTools(new ServerToolRegistry()), maxToolRounds: 2 });
    const updates = collectUpdates(manager);
    const before = server.requests.length;
    const end = await terminal(updates, manager.start({ task: "loop", fromModel: false, conversation: [] }));
    expect(end.content).toBe("giving up on tools");
    expect(server.requests.length - before).toBe(3);
  });

  it("announces a moved task QUEUED once, whether it runs at once or waits for a slot (one that waited was announced twice)", async () => {
    server.setScript({ kind: "hang" });
    const manager = make({ maxConcurrent: 1 });
    const updates = collectUpdates(manager);
    const moved = (taskId: string) => ({ taskId, task: taskId, delivery: DeliveryMode.DELIVERY_MODE_SILENT, fromModel: true, remainingMs: 5_000 });
    manager.adopt(2, [moved("task_1"), moved("task_2")], conversation);
    await new Promise((r) => setTimeout(r, 50));
    expect(statuses(updates, "task_1")).toEqual(["TASK_STATUS_QUEUED", "TASK_STATUS_RUNNING"]);
    expect(statuses(updates, "task_2")).toEqual(["TASK_STATUS_QUEUED"]);
  });

  it("survives a listener that throws", async () => {
    server.setScript({ kind: "stream", content: ["ok"] });
    const manager = make();
    const updates = collectUpdates(manager);
    manager.on("update", () => {
      throw new Error("listener bug");
    });
    expect((await terminal(updates, manager.start({ task: "t", fromModel: false, conversation: [] }))).status).toBe(TaskStatus.TASK_STATUS_DONE);
    expect((await terminal(updates, manager.start({ task: "t2", fromModel: false, conversation: [] }))).content).toBe("ok");
    expect(manager.runningCount).toBe(0);
  });
});
