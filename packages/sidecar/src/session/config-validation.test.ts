import { ErrorCode, SessionConfig, ToolSpec } from "@microturn/protocol";
import { describe, expect, it } from "vitest";
import { SessionFault } from "../errors.js";
import { CONFIG_LIMITS, validateSessionConfig } from "./config-validation.js";

const reserved = new Set(["delegate", "calculator"]);
const tool = (fields: Partial<ToolSpec>): ToolSpec => ToolSpec.fromPartial({ name: "lookup", description: "looks up", parametersJson: '{"type":"object"}', ...fields });
const config = (fields: Partial<SessionConfig>): SessionConfig => SessionConfig.fromPartial(fields);

function refusal(c: SessionConfig): { code: ErrorCode; message: string; fatal: boolean } | undefined {
  try {
    validateSessionConfig(c, reserved);
    return undefined;
  } catch (err) {
    expect(err).toBeInstanceOf(SessionFault);
    const fault = err as SessionFault;
    return { code: fault.code, message: fault.message, fatal: fault.fatal };
  }
}

describe("validateSessionConfig", () => {
  it("accepts tools with distinct valid names and object schemas (or none)", () => {
    expect(refusal(config({ instructions: "be brief", tools: [tool({}), tool({ name: "get_weather-2", parametersJson: "" })] }))).toBeUndefined();
  });

  it("refuses, fatally and naming the tool, bad names, twins, the sidecar's own tools and schemas that are not JSON objects", () => {
    const cases: [ToolSpec[], RegExp][] = [
      [[tool({ name: "bad name!" })], /tool name "bad name!" must match/],
      [[tool({ name: "" })], /tool name "" must match/],
      [[tool({ name: "x".repeat(65) })], /must match/],
      [[tool({}), tool({})], /tool "lookup" is declared twice/],
      [[tool({ name: "calculator" })], /tool "calculator" is one of this sidecar's own tools/],
      [[tool({ name: "delegate" })], /tool "delegate" is one of this sidecar's own tools/],
      [[tool({ parametersJson: "{not json" })], /tool "lookup": parameters_json is not JSON/],
      [[tool({ parametersJson: "[1,2]" })], /tool "lookup": parameters_json must be a JSON Schema object/],
    ];
    for (const [tools, message] of cases) {
      const got = refusal(config({ tools }));
      expect(got, String(message)).toMatchObject({ code: ErrorCode.ERROR_CODE_INVALID_ARGUMENT, fatal: true });
      expect(got!.message).toMatch(message);
    }
  });

  it("refuses instructions, tool lists and schemas past their limits as TOO_LARGE", () => {
    const big = [
      config({ instructions: "x".repeat(CONFIG_LIMITS.maxInstructionsChars + 1) }),
      config({ tools: Array.from({ length: CONFIG_LIMITS.maxTools + 1 }, (_, i) => tool({ name: `t${i}` })) }),
      config({ tools: [tool({ description: "d".repeat(CONFIG_LIMITS.maxToolDescriptionChars + 1) })] }),
      config({ tools: [tool({ parametersJson: `{"description":"${"d".repeat(CONFIG_LIMITS.maxToolSchemaChars)}"}` })] }),
    ];
    for (const c of big) expect(refusal(c)).toMatchObject({ code: ErrorCode.ERROR_CODE_TOO_LARGE, fatal: true });
  });
});
