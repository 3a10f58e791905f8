import { DeliveryMode } from "@microturn/protocol";
import { describe, expect, it } from "vitest";
import { parseDelegateArguments, DELEGATE_TOOL_SPEC } from "./delegate.js";
import { toolPromptSection } from "./prompt.js";
import { ToolCallParser } from "./tool-call-parser.js";

describe("delegate", () => {
  it("maps arguments onto a Delegate request", () => {
    expect(parseDelegateArguments('{"task": " plan a trip ", "delivery": "when_idle"}')).toEqual({ task: "plan a trip", delivery: DeliveryMode.DELIVERY_MODE_WHEN_IDLE, timeoutMs: 0 });
    expect(parseDelegateArguments('{"task": "x", "delivery": "DELIVERY_MODE_INTERRUPT", "timeout_ms": 5000}')).toMatchObject({ delivery: DeliveryMode.DELIVERY_MODE_INTERRUPT, timeoutMs: 5000 });
    expect(parseDelegateArguments('{"task": "x"}').delivery).toBe(DeliveryMode.DELIVERY_MODE_UNSPECIFIED);
  });

  it.each([
    ["{}", "non-empty \"task\""],
    ['{"task": ""}', "non-empty"],
    ['{"task": "x", "delivery": "later"}', "must be one of interrupt, when_idle, silent"],
    ['{"task": "x", "timeout_ms": -1}', "non-negative integer"],
    ["nope", "not JSON"],
    ['{"task": "x", "delivery": "constructor"}', "must be one of"],
  ])("refuses %s", (json, message) => {
    expect(() => parseDelegateArguments(json)).toThrow(message);
  });

  it("describes tools in the prompt in the markup the parser reads", () => {
    const section = toolPromptSection([DELEGATE_TOOL_SPEC]);
    expect(section).toContain('"name":"delegate"');
    expect(section).toContain("<tool_call>");
    const example = '<tool_call>{"name": "delegate", "arguments": {"task": "t"}}</tool_call>';
    expect(new ToolCallParser().push(example).calls[0]?.name).toBe("delegate");
    expect(toolPromptSection([])).toBe("");
  });
});
