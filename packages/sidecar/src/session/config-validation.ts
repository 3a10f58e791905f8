// Checks on a SessionStart's config that no engine or tool decides: tool names
// and schemas the model will be shown, and sizes, so a start that would fail
// later (or shadow a sidecar tool) is refused at once, naming the problem.
import { ErrorCode, type SessionConfig } from "@microturn/protocol";
import { SessionFault } from "../errors.js";
import { TOOL_NAME_PATTERN } from "../tools/errors.js";

export const CONFIG_LIMITS = {
  /** About 64k tokens: more is a document, not instructions, and slows every context rollover. */
  maxInstructionsChars: 256 * 1024,
  maxTools: 128,
  maxToolDescriptionChars: 8 * 1024,
  maxToolSchemaChars: 64 * 1024,
} as const;

function refuse(code: ErrorCode, message: string): never {
  throw new SessionFault(code, `start.config: ${message}`, { fatal: true });
}

/** Throws the fatal SessionFault naming the first problem; `reserved`: the names of the sidecar's own tools. */
export function validateSessionConfig(config: SessionConfig, reserved: ReadonlySet<string>): void {
  if (config.instructions.length > CONFIG_LIMITS.maxInstructionsChars) {
    refuse(ErrorCode.ERROR_CODE_TOO_LARGE, `instructions have ${config.instructions.length} chars, limit ${CONFIG_LIMITS.maxInstructionsChars}`);
  }
  if (config.tools.length > CONFIG_LIMITS.maxTools) refuse(ErrorCode.ERROR_CODE_TOO_LARGE, `${config.tools.length} tools, limit ${CONFIG_LIMITS.maxTools}`);
  const seen = new Set<string>();
  for (const tool of config.tools) {
    if (!TOOL_NAME_PATTERN.test(tool.name)) refuse(ErrorCode.ERROR_CODE_INVALID_ARGUMENT, `tool name ${JSON.stringify(tool.name)} must match [a-zA-Z0-9_-]{1,64}`);
    if (seen.has(tool.name)) refuse(ErrorCode.ERROR_CODE_INVALID_ARGUMENT, `tool "${tool.name}" is declared twice`);
    seen.add(tool.name);
    if (reserved.has(tool.name)) {
      refuse(ErrorCode.ERROR_CODE_INVALID_ARGUMENT, `tool "${tool.name}" is one of this sidecar's own tools (the model's calls to it run there); give yours another name`);
    }
    if (tool.description.length > CONFIG_LIMITS.maxToolDescriptionChars) {
      refuse(ErrorCode.ERROR_CODE_TOO_LARGE, `tool "${tool.name}": description has ${tool.description.length} chars, limit ${CONFIG_LIMITS.maxToolDescriptionChars}`);
    }
    if (tool.parametersJson.length > CONFIG_LIMITS.maxToolSchemaChars) {
      refuse(ErrorCode.ERROR_CODE_TOO_LARGE, `tool "${tool.name}": parameters_json has ${tool.parametersJson.length} chars, limit ${CONFIG_LIMITS.maxToolSchemaChars}`);
    }
    if (tool.parametersJson !== "") checkSchema(tool.name, tool.parametersJson);
  }
}

/** parameters_json must be a JSON object (a JSON Schema); empty takes `{"type":"object"}`. */
function checkSchema(name: string, json: string): void {
  let schema: unknown;
  try {
    schema = JSON.parse(json);
  } catch (err) {
    refuse(ErrorCode.ERROR_CODE_INVALID_ARGUMENT, `tool "${name}": parameters_json is not JSON (${(err as Error).message})`);
  }
  if (typeof schema !== "object" || schema === null || Array.isArray(schema)) {
    refuse(ErrorCode.ERROR_CODE_INVALID_ARGUMENT, `tool "${name}": parameters_json must be a JSON Schema object, got ${JSON.stringify(json.slice(0, 40))}`);
  }
}
