import { DeliveryMode, ErrorCode, type InputChunk, type SessionError, type ToolSpec } from "@microturn/protocol";
import { describe, expect, it } from "vitest";
import { SessionFault, toSessionError } from "../errors.js";
import { registerBuiltinTools } from "../tools/builtins.js";
import { DELEGATE_TOOL_SPEC } from "../tools/delegate.js";
import { ServerToolRegistry } from "../tools/registry.js";
import { RegistrySessionTools } from "../tools/session-tools.js";
import { ContextDeliveries } from "./context-deliveries.js";
import { recordingBackground } from "./testing/recording-background.js";
import type { ConversationEntry, DelegateRequest, ServerPayload } from "./ports.js";
import { MAX_OPEN_CALL_TURNS, SessionToolCalls } from "./session-tool-calls.js";

const LOOKUP: ToolSpec = { name: "lookup_contact", description: "Phone number of a contact", parametersJson: '{"type":"object"}', timeoutMs: 5000 };
const choosing = (seq: number, toolChoice: string): InputChunk => ({ seq, startMs: seq * 200, durationMs: 200, text: "", frames: [], patches: [], userSpeaking: false, toolChoice });
const NOW = { seq: 99, startMs: 0, userActive: false, modelSpeaking: false };

function toolCallsFor(options: { forcedToolCalls?: boolean; withTools?: boolean; background?: boolean; defaultDelivery?: DeliveryMode } = {}) {
  const errors: SessionError[] = [];
  const sent: ServerPayload[] = [];
  const started: DelegateRequest[] = [];
  const conversation: ConversationEntry[] = [{ role: "user", text: "find flights", startMs: 0, seq: 0 }];
  const deliveries = new ContextDeliveries();
  const background = recordingBackground(started);
  const toolCalls = new SessionToolCalls({
    capabilities: { engine: "test-engine", forcedToolCalls: options.forcedToolCalls ?? true },
    config: { tools: [LOOKUP], defaultDelivery: options.defaultDelivery ?? DeliveryMode.DELIVERY_MODE_UNSPECIFIED },
    toolSpecs: [LOOKUP, DELEGATE_TOOL_SPEC],
    ...(options.withTools === false ? {} : { tools: new RegistrySessionTools({ registry: registerBuiltinTools(new ServerToolRegistry()) }) }),
    background: () => {
      if (options.background === false) throw new SessionFault(ErrorCode.ERROR_CODE_BACKGROUND_UNAVAILABLE, "no background model is configured");
      return background;
    },
    conversation: () => conversation,
    deliveries,
    inputTimeMs: () => 1200,
    emit: (event) => sent.push(event),
    reportError: (err, context) => errors.push(toSessionError(err, context)),
  });
  const results = () => deliveries.take(NOW).map((p) => p.item.text);
  return { toolCalls, errors, sent, started, conversation, results };
}

const codeOf = (fn: () => unknown): [ErrorCode | undefined, string] => {
  try {
    fn();
  } catch (err) {
    return SessionFault.isInstance(err) ? [err.code, err.message] : [undefined, String(err)];
  }
  return [undefined, "did not throw"];
};

describe("SessionToolCalls.forcedTool", () => {
  it("gives the named tool's spec", () => {
    expect(toolCallsFor().toolCalls.forcedTool(choosing(2, "lookup_contact"))).toBe(LOOKUP);
  });

  it("refuses a tool the session does not have, naming the ones it has", () => {
    expect(codeOf(() => toolCallsFor().toolCalls.forcedTool(choosing(4, "get_weather")))).toEqual([
      ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
      'input seq 4: tool_choice "get_weather" names no tool of this session (tools: lookup_contact, delegate)',
    ]);
  });

  it("refuses any tool_choice on an engine that cannot force tool calls", () => {
    expect(codeOf(() => toolCallsFor({ forcedToolCalls: false }).toolCalls.forcedTool(choosing(5, "lookup_contact")))).toEqual([
      ErrorCode.ERROR_CODE_FAILED_PRECONDITION,
      "input seq 5: engine test-engine cannot force a tool call; resend without tool_choice",
    ]);
  });
});

describe("SessionToolCalls", () => {
  it("passes text through untouched without tools", () => {
    const { toolCalls, errors } = toolCallsFor({ withTools: false });
    expect(toolCalls.visibleText('<tool_call>{"name": "calculator", "arguments": {}}</tool_call>', 0)).toBe('<tool_call>{"name": "calculator", "arguments": {}}</tool_call>');
    expect(errors).toEqual([]);
  });

  it("strips tool-call markup, reports malformed calls, and starts the well-formed ones", () => {
    const { toolCalls, errors, sent } = toolCallsFor();
    const text = toolCalls.visibleText('One moment. <tool_call>{"name": "lookup_contact", "arguments": {"name": "Ana"}}</tool_call><tool_call>oops</tool_call>', 3);
    expect(text).toBe("One moment. ");
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ code: ErrorCode.ERROR_CODE_INVALID_ARGUMENT, seq: 3 });
    expect(errors[0]!.message).toContain("model emitted a malformed tool call");
    expect(sent).toMatchObject([{ $case: "toolCall", value: { name: "lookup_contact", argumentsJson: '{"name":"Ana"}', seq: 3 } }]);
    toolCalls.toolResult(sent[0]?.$case === "toolCall" ? sent[0].value.callId : "", "{}", false);
  });

  it("adds a client tool's result to the deliveries once the client answers", async () => {
    const { toolCalls, sent, results } = toolCallsFor();
    const running = toolCalls.runToolCall("lookup_contact", '{"name":"Ana"}', 7);
    const call = sent[0]?.$case === "toolCall" ? sent[0].value : undefined;
    expect(call).toMatchObject({ name: "lookup_contact", seq: 7, timeoutMs: 5000 });
    expect(results()).toEqual([]);
    toolCalls.toolResult(call!.callId, '{"phone":"123"}', false);
    await running;
    expect(results()).toEqual(['[tool lookup_contact result] {"phone":"123"}']);
  });

  it("runs server tools itself and answers unknown tools with an error result, telling the client too", async () => {
    const { toolCalls, sent, results, errors } = toolCallsFor();
    await toolCalls.runToolCall("calculator", '{"expression": "6*7"}', 1);
    expect(errors).toEqual([]);
    await toolCalls.runToolCall("nope", "{}", 1);
    expect(sent).toEqual([]);
    expect(results()).toEqual(['[tool calculator result] {"expression":"6*7","result":42}', '[tool nope result] error: unknown tool "nope"']);
    expect(errors).toEqual([expect.objectContaining({ code: ErrorCode.ERROR_CODE_INVALID_ARGUMENT, seq: 1, message: expect.stringContaining('unknown tool "nope"') })]);
  });

  it("refuses a client's tool result when the session has no tools", () => {
    expect(codeOf(() => toolCallsFor({ withTools: false }).toolCalls.toolResult("call_1", "{}", false))).toEqual([
      ErrorCode.ERROR_CODE_NOT_FOUND,
      "tool result for unknown call call_1: this session has no tools",
    ]);
  });
});

describe("SessionToolCalls delegate", () => {
  it("starts a background task from the model with the session's default delivery and a copy of the conversation", async () => {
    const { toolCalls, started, conversation, results, errors } = toolCallsFor({ defaultDelivery: DeliveryMode.DELIVERY_MODE_SILENT });
    await toolCalls.runToolCall("delegate", '{"task": "compare fares", "timeout_ms": 9000}', 2);
    await toolCalls.runToolCall("delegate", '{"task": "book it", "delivery": "interrupt"}', 3);
    expect(started).toEqual([
      { task: "compare fares", delivery: DeliveryMode.DELIVERY_MODE_SILENT, timeoutMs: 9000, fromModel: true, conversation },
      { task: "book it", delivery: DeliveryMode.DELIVERY_MODE_INTERRUPT, fromModel: true, conversation },
    ]);
    expect(started[0]!.conversation).not.toBe(conversation);
    expect(results()).toEqual([]);
    expect(errors).toEqual([]);
  });

  it("takes when_idle when neither the call nor the session names a delivery", async () => {
    const { toolCalls, started } = toolCallsFor();
    await toolCalls.runToolCall("delegate", '{"task": "compare fares"}', 2);
    expect(started[0]!.delivery).toBe(DeliveryMode.DELIVERY_MODE_WHEN_IDLE);
  });

  it("reports bad arguments as INVALID_ARGUMENT for the seq, and starts nothing", async () => {
    const { toolCalls, started, errors } = toolCallsFor();
    await toolCalls.runToolCall("delegate", '{"delivery": "interrupt"}', 6);
    await toolCalls.runToolCall("delegate", "not json", 7);
    expect(started).toEqual([]);
    expect(errors.map((e) => [e.code, e.seq])).toEqual([
      [ErrorCode.ERROR_CODE_INVALID_ARGUMENT, 6],
      [ErrorCode.ERROR_CODE_INVALID_ARGUMENT, 7],
    ]);
    expect(errors[0]!.message).toBe('delegate needs a non-empty "task" string');
  });

  it("reports a session without a background as it is", async () => {
    const { toolCalls, errors } = toolCallsFor({ background: false });
    await toolCalls.runToolCall("delegate", '{"task": "compare fares"}', 8);
    expect(errors).toMatchObject([{ code: ErrorCode.ERROR_CODE_BACKGROUND_UNAVAILABLE, seq: 8 }]);
  });
});

describe("SessionToolCalls: a call the model never closes", () => {
  it("is dropped after MAX_OPEN_CALL_TURNS micro-turns, and later text is heard again", () => {
    const { toolCalls, errors } = toolCallsFor();
    expect(toolCalls.visibleText('Sure. <tool_call>{"name":"get_ti', 0)).toBe("Sure. ");
    for (let seq = 0; seq < MAX_OPEN_CALL_TURNS - 1; seq++) {
      if (seq > 0) expect(toolCalls.visibleText("me", seq)).toBe("");
      toolCalls.endTurn(seq, false);
    }
    expect(errors).toEqual([]);
    toolCalls.endTurn(MAX_OPEN_CALL_TURNS - 1, false);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.message).toMatch(/tool call dropped, not closed within 25 micro-turns: \{"name":"get_ti/);
    expect(toolCalls.visibleText("Back to you.", MAX_OPEN_CALL_TURNS)).toBe("Back to you.");
  });

  it("is dropped when a barge-in or a rollover takes it out of the model's memory; nothing happens outside a call", () => {
    const { toolCalls, errors } = toolCallsFor();
    toolCalls.abandonCall(3, "cut by the user's barge-in");
    expect(errors).toEqual([]);
    expect(toolCalls.visibleText('<tool_call>{"name":"lookup', 4)).toBe("");
    toolCalls.abandonCall(4, "cut by the user's barge-in");
    expect(errors.map((e) => e.message)).toEqual([`model's tool call dropped, cut by the user's barge-in: {"name":"lookup`]);
    expect(toolCalls.visibleText("Hello", 5)).toBe("Hello");
  });

  it("a call whose quotes never balance ends at its tag once the model yields the turn, and what followed is heard", () => {
    const { toolCalls, errors } = toolCallsFor();
    expect(toolCalls.visibleText('<tool_call>{"name": "lookup_contact", "arguments": {"name": "Ada"5"}}</tool_call> One moment.', 0)).toBe("");
    // The budget ran out mid-utterance: more may come, the call stays open.
    expect(toolCalls.endTurn(0, false)).toBe("");
    expect(errors).toEqual([]);
    // The model stopped: no more of the call is coming.
    expect(toolCalls.endTurn(1, true)).toBe(" One moment.");
    expect(errors.map((e) => e.code)).toEqual([ErrorCode.ERROR_CODE_INVALID_ARGUMENT]);
    expect(errors[0]!.message).toMatch(/malformed tool call/);
    expect(toolCalls.visibleText("Hello", 2)).toBe("Hello");
  });

  it("a call that closes in time runs as usual", async () => {
    const { toolCalls, errors, sent } = toolCallsFor();
    toolCalls.visibleText('<tool_call>{"name":"lookup_contact",', 0);
    toolCalls.endTurn(0, false);
    toolCalls.visibleText(' "arguments": {"name": "Ada"}}</tool_call>', 1);
    toolCalls.endTurn(1, false);
    await new Promise((resolve) => setImmediate(resolve));
    expect(errors).toEqual([]);
    expect(sent.filter((e) => e.$case === "toolCall").map((e) => e.$case === "toolCall" && e.value.name)).toEqual(["lookup_contact"]);
  });
});
