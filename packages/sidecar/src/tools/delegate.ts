// The built-in `delegate` tool: the interaction model hands a task to the
// background model. Its arguments map onto the proto Delegate message.
import { DeliveryMode, type ToolSpec } from "@microturn/protocol";
import { ToolError } from "./errors.js";

export const DELEGATE_TOOL_NAME = "delegate";

const DELIVERY_NAMES: Record<string, DeliveryMode> = {
  interrupt: DeliveryMode.DELIVERY_MODE_INTERRUPT,
  when_idle: DeliveryMode.DELIVERY_MODE_WHEN_IDLE,
  silent: DeliveryMode.DELIVERY_MODE_SILENT,
};

export const DELEGATE_TOOL_SPEC: ToolSpec = {
  name: DELEGATE_TOOL_NAME,
  description:
    "Hand a task that needs time (research, planning, long reasoning, writing) to the background model and keep talking. " +
    'Its answer arrives later in the conversation. delivery: "interrupt" (as soon as it is ready), "when_idle" (at the next pause; default), ' +
    '"silent" (context only; mention it only when asked).',
  parametersJson: JSON.stringify({
    type: "object",
    properties: {
      task: { type: "string", description: "What to do, in full sentences, with every detail the background model needs." },
      delivery: { type: "string", enum: Object.keys(DELIVERY_NAMES) },
      timeout_ms: { type: "integer", minimum: 1 },
    },
    required: ["task"],
  }),
  timeoutMs: 0,
};

export interface DelegateRequest {
  task: string;
  /** UNSPECIFIED when the call named none (the session default applies). */
  delivery: DeliveryMode;
  /** 0 takes the server default. */
  timeoutMs: number;
}

/** Reads a delegate call's arguments; throws ToolError("invalid_arguments"). */
export function parseDelegateArguments(argumentsJson: string): DelegateRequest {
  let args: unknown;
  try {
    args = JSON.parse(argumentsJson);
  } catch (err) {
    throw new ToolError("invalid_arguments", `delegate arguments are not JSON: ${(err as Error).message}`, { toolName: DELEGATE_TOOL_NAME, cause: err });
  }
  if (typeof args !== "object" || args === null || Array.isArray(args)) {
    throw new ToolError("invalid_arguments", "delegate arguments must be a JSON object", { toolName: DELEGATE_TOOL_NAME });
  }
  const { task, delivery, timeout_ms: timeoutMs } = args as Record<string, unknown>;
  if (typeof task !== "string" || task.trim() === "") {
    throw new ToolError("invalid_arguments", 'delegate needs a non-empty "task" string', { toolName: DELEGATE_TOOL_NAME });
  }
  let mode = DeliveryMode.DELIVERY_MODE_UNSPECIFIED;
  if (delivery !== undefined && delivery !== null) {
    const key = typeof delivery === "string" ? delivery.toLowerCase().replace(/^delivery_mode_/, "").replace(/-/g, "_") : "";
    const found = Object.hasOwn(DELIVERY_NAMES, key) ? DELIVERY_NAMES[key] : undefined;
    if (found === undefined) {
      throw new ToolError("invalid_arguments", `delegate "delivery" must be one of ${Object.keys(DELIVERY_NAMES).join(", ")}; got ${JSON.stringify(delivery)}`, {
        toolName: DELEGATE_TOOL_NAME,
      });
    }
    mode = found;
  }
  if (timeoutMs !== undefined && (typeof timeoutMs !== "number" || !Number.isInteger(timeoutMs) || timeoutMs < 0)) {
    throw new ToolError("invalid_arguments", 'delegate "timeout_ms" must be a non-negative integer', { toolName: DELEGATE_TOOL_NAME });
  }
  return { task: task.trim(), delivery: mode, timeoutMs: (timeoutMs as number | undefined) ?? 0 };
}
