// Tools: the model's tool-call markup, server-side tools and client-side tool round-trips.
export { ToolError, okOutcome, errorOutcome, TOOL_NAME_PATTERN, type ToolErrorCode, type ToolOutcome } from "./errors.js";
export { validate as validateArguments, checkSchema, type JsonSchemaLite } from "./schema.js";
export { evaluateExpression, CalculatorError, MAX_EXPRESSION_CHARS } from "./calculator.js";
export { ServerToolRegistry, DEFAULT_TOOL_TIMEOUT_MS, type ServerTool, type ToolContext, type ExecuteOptions } from "./registry.js";
export { getTimeTool, calculatorTool, registerBuiltinTools } from "./builtins.js";
export { ClientToolBroker, DEFAULT_CLIENT_TOOL_TIMEOUT_MS, type ClientCallOptions, type PendingClientCall } from "./client-broker.js";
export {
  ToolCallParser,
  parseToolCallBody,
  TOOL_CALL_OPEN,
  TOOL_CALL_CLOSE,
  type ParsedToolCall,
  type ToolCallParseResult,
  type ToolCallParserOptions,
} from "./tool-call-parser.js";
export { DELEGATE_TOOL_NAME, DELEGATE_TOOL_SPEC, parseDelegateArguments, type DelegateRequest } from "./delegate.js";
export { toolPromptSection } from "./prompt.js";
export { RegistrySessionTools, type RegistrySessionToolsOptions } from "./session-tools.js";
