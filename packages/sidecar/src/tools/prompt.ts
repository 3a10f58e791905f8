// The tool section of the interaction model's system prompt, in the
// Hermes/Qwen convention the parser reads back.
import type { ToolSpec } from "@microturn/protocol";
import { TOOL_CALL_CLOSE, TOOL_CALL_OPEN } from "./tool-call-parser.js";

function parametersOf(spec: ToolSpec): unknown {
  try {
    return spec.parametersJson.trim() === "" ? { type: "object" } : JSON.parse(spec.parametersJson);
  } catch {
    return { type: "object" };
  }
}

export function toolPromptSection(specs: readonly ToolSpec[]): string {
  if (specs.length === 0) return "";
  const lines = specs.map((s) => JSON.stringify({ type: "function", function: { name: s.name, description: s.description, parameters: parametersOf(s) } }));
  return [
    "# Tools",
    "",
    "You may call one or more functions. Function signatures are within <tools></tools> XML tags:",
    "<tools>",
    ...lines,
    "</tools>",
    "",
    `For each function call, write a JSON object with the function name and arguments within ${TOOL_CALL_OPEN}${TOOL_CALL_CLOSE} XML tags:`,
    TOOL_CALL_OPEN,
    '{"name": <function-name>, "arguments": <args-json-object>}',
    TOOL_CALL_CLOSE,
  ].join("\n");
}
