import { ErrorCode, TaskStatus, type BackgroundUpdate } from "@microturn/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SessionFault } from "../errors.js";
import { BackgroundManager } from "./manager.js";
import { OpenAiChatClient } from "./openai-client.js";
import { ManagerSessionBackground } from "./session-background.js";
import { startOpenAiTestServer, type OpenAiTestServer } from "./testing/openai-server.js";

describe("ManagerSessionBackground", () => {
  let server: OpenAiTestServer;
  let client: OpenAiChatClient;
  beforeAll(async () => {
    server = await startOpenAiTestServer({ kind: "stream", content: ["done"], delayMs: 20 });
    client = new OpenAiChatClient({ baseUrl: server.url });
  });
  afterAll(async () => {
    await client.close();
    await server.close();
  });

  it("starts tasks, counts them, forwards updates, and maps errors to SessionFaults", async () => {
    const manager = new BackgroundManager({ client, maxConcurrent: 1, maxQueued: 1 });
    const port = new ManagerSessionBackground(manager);
    const updates: BackgroundUpdate[] = [];
    port.onUpdate((u) => updates.push(u));
    const request = { task: "t", delivery: 0, fromModel: false, conversation: [] };
    const first = port.start({ ...request, taskId: "one" });
    port.start({ ...request, taskId: "two" });
    expect(first).toBe("one");
    expect(port.running).toBe(2);
    const fault = (fn: () => void) => {
      try {
        fn();
      } catch (err) {
        return SessionFault.isInstance(err) ? err.code : "other";
      }
      return "none";
    };
    expect(fault(() => port.start({ ...request, taskId: "three" }))).toBe(ErrorCode.ERROR_CODE_RESOURCE_EXHAUSTED);
    expect(fault(() => port.start({ ...request, taskId: "one" }))).toBe(ErrorCode.ERROR_CODE_INVALID_ARGUMENT);
    expect(fault(() => port.cancel("nope"))).toBe(ErrorCode.ERROR_CODE_NOT_FOUND);
    port.cancel("two");
    await expect.poll(() => updates.find((u) => u.taskId === "one" && u.status === TaskStatus.TASK_STATUS_DONE)?.content).toBe("done");
    expect(updates.find((u) => u.taskId === "two")?.status).toBe(TaskStatus.TASK_STATUS_CANCELLED);
    await expect.poll(() => port.running).toBe(0);
    port.cancelAll();
    manager.close();
  });
});
