import { ErrorCode, type ServerEvent } from "@microturn/protocol";
import { describe, expect, it } from "vitest";
import { SessionFault } from "../errors.js";
import { registerBuiltinTools } from "./builtins.js";
import { ServerToolRegistry } from "./registry.js";
import { RegistrySessionTools } from "./session-tools.js";

describe("RegistrySessionTools", () => {
  const make = () => {
    const registry = registerBuiltinTools(new ServerToolRegistry());
    registry.register({ name: "wait_forever", description: "", parameters: { type: "object" }, handler: () => new Promise(() => {}), timeoutMs: 60_000 });
    return new RegistrySessionTools({ registry });
  };

  it("extracts calls and reports malformed ones as messages", () => {
    const extractor = make().createExtractor();
    const out = extractor.push('Sure. <tool_call>{"name": "calculator", "arguments": {"expression": "1+1"}}</tool_call><tool_call>oops</tool_call>');
    expect(out.text).toBe("Sure. ");
    expect(out.calls).toEqual([{ name: "calculator", argumentsJson: '{"expression":"1+1"}' }]);
    expect(out.errors).toHaveLength(1);
    expect(out.errors[0]).toContain("not JSON");
  });

  it("runs server tools and reports their failures as outcomes", async () => {
    const tools = make();
    expect(tools.isServerTool("calculator")).toBe(true);
    expect(tools.isServerTool("lookup_contact")).toBe(false);
    expect(await tools.runServerTool("calculator", '{"expression": "6*7"}', new AbortController().signal)).toEqual({ ok: true, output: '{"expression":"6*7","result":42}' });
    const bad = await tools.runServerTool("calculator", "{}", new AbortController().signal);
    expect(bad.ok).toBe(false);
    expect(!bad.ok && bad.error).toContain("expression is required");
  });

  it("round-trips a client tool: sends the ToolCall, waits for the result", async () => {
    const tools = make();
    const sent: Array<NonNullable<ServerEvent["event"]>> = [];
    const pending = tools.callClientTool({ name: "lookup_contact", description: "", parametersJson: "{}", timeoutMs: 5_000 }, '{"name":"Ana"}', 7, (e) => sent.push(e));
    expect(sent[0]?.$case).toBe("toolCall");
    const call = sent[0]?.$case === "toolCall" ? sent[0].value : undefined;
    expect(call).toMatchObject({ name: "lookup_contact", argumentsJson: '{"name":"Ana"}', seq: 7, timeoutMs: 5_000 });
    tools.resolveClientTool(call?.callId ?? "", '{"phone":"123"}', false);
    expect(await pending).toEqual({ ok: true, output: '{"phone":"123"}' });
    try {
      tools.resolveClientTool("call_unknown", "{}", false);
      expect.unreachable();
    } catch (err) {
      expect(SessionFault.isInstance(err) && err.code).toBe(ErrorCode.ERROR_CODE_NOT_FOUND);
    }
  });

  it("cancelAll ends client calls and running server tools", async () => {
    const tools = make();
    const client = tools.callClientTool({ name: "x", description: "", parametersJson: "{}", timeoutMs: 0 }, "{}", 1, () => {});
    const server = tools.runServerTool("wait_forever", "{}", new AbortController().signal);
    tools.cancelAll();
    expect(await client).toMatchObject({ ok: false });
    const outcome = await server;
    expect(!outcome.ok && outcome.error).toContain("cancelled");
  });
});
