import { ContextSource, DeliveryMode, TaskStatus, type BackgroundUpdate, type ContextItem } from "@microturn/protocol";
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
    const busy = d.take({ seq: 1, startMs: 200, userActive: true, modelSpeaking: false });
    expect(busy.map((p) => p.item.text)).toEqual(["[background b (context only; mention it only if asked)] result of b", "[tool calc result] 42"]);
    expect(busy.map((p) => p.update?.taskId)).toEqual(["b", undefined]);
    expect(d.take({ seq: 2, startMs: 400, userActive: false, modelSpeaking: true })).toEqual([]);
    const late = d.take({ seq: 25, startMs: WHEN_IDLE_MAX_WAIT_MS, userActive: true, modelSpeaking: true });
    expect(late.map((p) => p.item.refId)).toEqual(["a"]);
  });

  it("takes results given back by a failed turn first at the next boundary, each under its own mode", () => {
    const d = new ContextDeliveries();
    d.addToolResult("calc", "42", 0);
    d.addBackgroundResult(done("a", DeliveryMode.DELIVERY_MODE_WHEN_IDLE), DeliveryMode.DELIVERY_MODE_WHEN_IDLE, 0);
    const taken = d.take({ seq: 1, startMs: 200, userActive: false, modelSpeaking: false });
    expect(taken).toHaveLength(2);
    d.addToolResult("later", "7", 200);
    d.giveBack(taken);
    expect(d.waiting().map((p) => p.item.refId)).toEqual(["calc", "a", "later"]);
    // Busy now: the when_idle result waits again; the others go.
    expect(d.take({ seq: 2, startMs: 400, userActive: true, modelSpeaking: false }).map((p) => p.item.refId)).toEqual(["calc", "later"]);
    expect(d.waiting().map((p) => p.item.refId)).toEqual(["a"]);
  });

  it("words a failed task as a failure", () => {
    const d = new ContextDeliveries();
    d.addBackgroundResult({ ...done("x", DeliveryMode.DELIVERY_MODE_INTERRUPT), status: TaskStatus.TASK_STATUS_FAILED, errorMessage: "503" }, DeliveryMode.DELIVERY_MODE_INTERRUPT, 0);
    expect(d.take({ seq: 0, startMs: 0, userActive: true, modelSpeaking: true })[0]!.item.text).toBe("[background x (tell the user now)] failed: 503");
  });

  it("resolves a result's delivery: its own, else the session default, else when_idle", () => {
    const { DELIVERY_MODE_UNSPECIFIED: UNSET, DELIVERY_MODE_INTERRUPT: INTERRUPT, DELIVERY_MODE_SILENT: SILENT, DELIVERY_MODE_WHEN_IDLE: WHEN_IDLE, UNRECOGNIZED } = DeliveryMode;
    expect(resolveDelivery(INTERRUPT, SILENT)).toBe(INTERRUPT);
    expect(resolveDelivery(UNSET, SILENT)).toBe(SILENT);
    expect(resolveDelivery(UNRECOGNIZED, SILENT)).toBe(SILENT);
    expect(resolveDelivery(UNSET, UNSET)).toBe(WHEN_IDLE);
    expect(resolveDelivery(UNSET, UNRECOGNIZED)).toBe(WHEN_IDLE);
    // A mode number this sidecar does not know (a newer client's) counts as not set, as UNRECOGNIZED does
    // (a recording writes both as UNRECOGNIZED); it once passed through and worded the result "undefined".
    expect(resolveDelivery(7 as DeliveryMode, SILENT)).toBe(SILENT);
    expect(resolveDelivery(UNSET, 7 as DeliveryMode)).toBe(WHEN_IDLE);
  });

  describe("with a recorded script (replay)", () => {
    const boundary = (seq: number) => ({ seq, startMs: seq * 200, userActive: true, modelSpeaking: true });
    const recorded = (refId: string, text: string, source = ContextSource.CONTEXT_SOURCE_BACKGROUND): ContextItem => ({ source, text, refId });

    it("gives each boundary its recorded items, whatever has arrived and however it was delivered", () => {
      const script = new Map([
        [2, [recorded("a", "[background a] recorded result of a")]],
        [3, [recorded("calc", "[tool calc result] 42", ContextSource.CONTEXT_SOURCE_TOOL)]],
      ]);
      const d = new ContextDeliveries(script);
      // Arrived early and interrupt: a live session would deliver it at seq 0; the recording had it at seq 2.
      d.addBackgroundResult(done("a", DeliveryMode.DELIVERY_MODE_INTERRUPT), DeliveryMode.DELIVERY_MODE_INTERRUPT, 0);
      expect(d.take(boundary(0))).toEqual([]);
      expect(d.take(boundary(1))).toEqual([]);
      const atTwo = d.take(boundary(2));
      expect(atTwo.map((p) => p.item)).toEqual([script.get(2)![0]]);
      // The live result the recorded item stands for goes with it (its client hears it delivered), and only once.
      expect(atTwo.map((p) => p.update?.taskId)).toEqual(["a"]);
      expect(d.waiting()).toEqual([]);
      // Not arrived yet at seq 3: the recorded item goes in all the same, and the late result is dropped when it comes.
      expect(d.take(boundary(3)).map((p) => [p.item.text, p.update])).toEqual([["[tool calc result] 42", undefined]]);
      d.addToolResult("calc", "41", 900);
      expect(d.waiting()).toEqual([]);
      // A result the recording never had waits, and never enters the context; nothing is given back under a script.
      d.addToolResult("other", "x", 1000);
      expect(d.take(boundary(4))).toEqual([]);
      d.giveBack(atTwo);
      expect(d.waiting().map((p) => p.item.refId)).toEqual(["other"]);
    });
  });
});
