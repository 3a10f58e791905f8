import { describe, expect, it } from "vitest";
import { ClientToolBroker } from "./client-broker.js";
import { ToolError } from "./errors.js";

describe("ClientToolBroker", () => {
  it("returns the ToolCall to send and settles with the client's result", async () => {
    const broker = new ClientToolBroker();
    const call = broker.call("lookup_contact", '{"name": "Ana"}', { seq: 42, timeoutMs: 5_000 });
    expect(call.toolCall).toEqual({ callId: call.callId, name: "lookup_contact", argumentsJson: '{"name": "Ana"}', seq: 42, timeoutMs: 5_000 });
    expect(broker.pendingCount).toBe(1);
    broker.resolve({ callId: call.callId, outputJson: '{"phone": "123"}', isError: false });
    await expect(call.result).resolves.toEqual({ status: "ok", outputJson: '{"phone": "123"}', isError: false });
    expect(broker.pendingCount).toBe(0);
  });

  it("passes a client-side failure through as an error outcome", async () => {
    const broker = new ClientToolBroker();
    const call = broker.call("lookup_contact", "{}");
    broker.resolve({ callId: call.callId, outputJson: "permission denied", isError: true });
    await expect(call.result).resolves.toMatchObject({ status: "error", isError: true, outputJson: "permission denied" });
  });

  it("resolves a timeout as an outcome, and a late result is an unknown call", async () => {
    const broker = new ClientToolBroker();
    const call = broker.call("slow_tool", "{}", { timeoutMs: 30 });
    const outcome = await call.result;
    expect(outcome.status).toBe("timeout");
    expect(outcome.errorCode).toBe("timeout");
    expect(outcome.outputJson).toContain("within 30 ms");
    try {
      broker.resolve({ callId: call.callId, outputJson: "{}", isError: false });
      expect.unreachable();
    } catch (err) {
      expect(ToolError.isInstance(err) && err.code).toBe("unknown_call");
    }
  });

  it("without deadlines (replay) waits past a call's timeout for its result", async () => {
    const broker = new ClientToolBroker({ deadlines: false });
    const call = broker.call("get_weather", "{}", { timeoutMs: 20 });
    expect(call.toolCall.timeoutMs).toBe(20);
    await new Promise((r) => setTimeout(r, 60));
    expect(broker.pendingCount).toBe(1);
    broker.resolve({ callId: call.callId, outputJson: "{}", isError: false });
    await expect(call.result).resolves.toMatchObject({ status: "ok" });
    const cancelled = broker.call("get_weather", "{}", { timeoutMs: 20 });
    broker.cancelAll();
    await expect(cancelled.result).resolves.toMatchObject({ status: "cancelled" });
  });

  it("rejects a result for an id it never issued with a typed error", () => {
    const broker = new ClientToolBroker();
    expect(() => broker.resolve({ callId: "call_made_up", outputJson: "", isError: false })).toThrow(/no pending tool call/);
  });

  it("numbers its calls, so a replay of the session meets the same ids its recording answered", () => {
    const ids = (broker: ClientToolBroker) => ["a", "b", "c"].map((name) => broker.call(name, "{}", { timeoutMs: 50 }).callId);
    const live = new ClientToolBroker();
    const first = ids(live);
    expect(new Set(first).size).toBe(3);
    expect(ids(new ClientToolBroker())).toEqual(first);
    // Unique within the session, answered or not.
    live.cancelAll();
    expect(ids(live).some((id) => first.includes(id))).toBe(false);
  });

  it("cancels one call or all of them", async () => {
    const broker = new ClientToolBroker();
    const a = broker.call("a", "{}");
    const b = broker.call("b", "{}");
    const c = broker.call("c", "{}");
    expect(broker.cancel(a.callId)).toBe(true);
    expect(broker.cancel(a.callId)).toBe(false);
    broker.cancelAll();
    const outcomes = await Promise.all([a.result, b.result, c.result]);
    expect(outcomes.map((o) => o.status)).toEqual(["cancelled", "cancelled", "cancelled"]);
    expect(broker.pendingCount).toBe(0);
  });

  it("takes a timeout longer than a timer can wait as the longest wait (it once fired at once)", async () => {
    const broker = new ClientToolBroker();
    const call = broker.call("patient_tool", "{}", { timeoutMs: 2 ** 32 - 1 });
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(broker.pendingCount).toBe(1);
    broker.resolve({ callId: call.callId, outputJson: "{}", isError: false });
    await expect(call.result).resolves.toMatchObject({ status: "ok" });
  });
});
