// Built-in server-side tools: the current time (the model's clock is input
// time, not the wall clock) and arithmetic (models are bad at it).
import { evaluateExpression, CalculatorError, MAX_EXPRESSION_CHARS } from "./calculator.js";
import { ToolError } from "./errors.js";
import type { ServerTool, ServerToolRegistry } from "./registry.js";

export function getTimeTool(options: { now?: () => number; defaultTimeZone?: string } = {}): ServerTool<{ timezone?: string }> {
  const now = options.now ?? Date.now;
  const defaultTimeZone = options.defaultTimeZone ?? Intl.DateTimeFormat().resolvedOptions().timeZone;
  return {
    name: "get_time",
    description: "Current date and time, in the server's time zone or in the IANA time zone given (e.g. Europe/Lisbon).",
    parameters: {
      type: "object",
      properties: { timezone: { type: "string", description: "IANA time zone name; the server's by default.", maxLength: 64 } },
      additionalProperties: false,
    },
    handler: ({ timezone }) => {
      const timeZone = timezone ?? defaultTimeZone;
      let format: Intl.DateTimeFormat;
      try {
        format = new Intl.DateTimeFormat("en-US", { timeZone, dateStyle: "full", timeStyle: "long" });
      } catch (err) {
        throw new ToolError("invalid_arguments", `unknown time zone "${timeZone}"`, { toolName: "get_time", cause: err });
      }
      const ms = now();
      return { iso: new Date(ms).toISOString(), unixMs: ms, timezone: timeZone, local: format.format(new Date(ms)) };
    },
  };
}

export function calculatorTool(): ServerTool<{ expression: string }> {
  return {
    name: "calculator",
    description:
      "Evaluates an arithmetic expression: + - * / % ^, parentheses, sqrt, cbrt, abs, round, floor, ceil, sin, cos, tan, asin, acos, atan, ln, log (base 10, or log(x, base)), log2, exp, pow, min, max, constants pi, e, tau.",
    parameters: {
      type: "object",
      properties: { expression: { type: "string", description: "e.g. (12.5 * 3) / sqrt(2)", maxLength: MAX_EXPRESSION_CHARS } },
      required: ["expression"],
      additionalProperties: false,
    },
    handler: ({ expression }) => {
      try {
        return { expression, result: evaluateExpression(expression) };
      } catch (err) {
        if (err instanceof CalculatorError) {
          throw new ToolError("invalid_arguments", `cannot evaluate at character ${err.position}: ${err.message}`, { toolName: "calculator", cause: err });
        }
        throw err;
      }
    },
  };
}

/** Registers get_time and calculator. */
export function registerBuiltinTools(registry: ServerToolRegistry, options: { now?: () => number; defaultTimeZone?: string } = {}): ServerToolRegistry {
  return registry.register(getTimeTool(options)).register(calculatorTool());
}
