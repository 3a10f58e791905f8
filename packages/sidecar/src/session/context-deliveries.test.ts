import { DeliveryMode, TaskStatus, type BackgroundUpdate } from "@microturn/protocol";
import { describe, expect, it } from "vitest";
import { ContextDeliveries, resolveDelivery, WHEN_IDLE_MAX_WAIT_MS } from "./context-deliveries.js";

const done = (taskId: string, delivery: DeliveryMode): BackgroundUpdate => ({
  taskId,
  status: TaskStatus.TASK_STATUS_DONE,
  content: `result of ${taskId}`,
  delivery,
  errorMessage: "",
  deliveredAtSeq: 0,
  fromModel: false,
  task: "t",
});

describe("ContextDeliveries", () => {
  it("delivers interrupt and silent at once, when_idle at a pause or after the longest wait", () => {
    const d = new ContextDeliveries();
    d.addBackgroundResult(done("a", DeliveryMode.DELIVERY_MODE_WHEN_IDLE), DeliveryMode.DELIVERY_MODE_WHEN_IDLE, 0);
    d.addBackgroundResult(done("b", DeliveryMode.DELIVERY_MODE_SILENT), DeliveryMode.DELIVERY_MODE_SILENT, 0);
    d.addToolResult("calc", "42", 0);
    const delivered: BackgroundUpdate[] = [];
    const busy = d.take({ seq: 1, startMs: 200, userActive: true, modelSpeaking: false }, (u) => delivered.push(u));
    expect(busy.map((i) => i.text)).toEqual(["[background b (context only; mention it only if asked)] result of b", "[tool calc result] 42"]);
    expect(delivered).toMatchObject([{ taskId: "b", deliveredAtSeq: 1, content: "" }]);
    expect(d.take({ seq: 2, startMs: 400, userActive: false, modelSpeaking: true }, () => undefined)).toEqual([]);
    const late = d.take({ seq: 25, startMs: WHEN_IDLE_MAX_WAIT_MS, userActive: true, modelSpeaking: true }, (u) => delivered.push(u));
    expect(late.map((i) => i.refId)).toEqual(["a"]);
    expect(delivered.at(-1)).toMatchObject({ taskId: "a", deliveredAtSeq: 25 });
  });

  it("words a failed task as a failure", () => {
    const d = new ContextDeliveries();
    d.addBackgroundResult({ ...done("x", DeliveryMode.DELIVERY_MODE_INTERRUPT), status: TaskStatus.TASK_STATUS_FAILED, errorMessage: "503" }, DeliveryMode.DELIVERY_MODE_INTERRUPT, 0);
    expect(d.take({ seq: 0, startMs: 0, userActive: true, modelSpeaking: true }, () => undefined)[0]!.text).toBe("[background x (tell the user now)] failed: 503");
  });

  it("resolves a result's delivery: its own, else the session default, else when_idle", () => {
    const { DELIVERY_MODE_UNSPECIFIED: UNSET, DELIVERY_MODE_INTERRUPT: INTERRUPT, DELIVERY_MODE_SILENT: SILENT, DELIVERY_MODE_WHEN_IDLE: WHEN_IDLE, UNRECOGNIZED } = DeliveryMode;
    expect(resolveDelivery(INTERRUPT, SILENT)).toBe(INTERRUPT);
    expect(resolveDelivery(UNSET, SILENT)).toBe(SILENT);
    expect(resolveDelivery(UNRECOGNIZED, SILENT)).toBe(SILENT);
    expect(resolveDelivery(UNSET, UNSET)).toBe(WHEN_IDLE);
    expect(resolveDelivery(UNSET, UNRECOGNIZED)).toBe(WHEN_IDLE);
  });
});
