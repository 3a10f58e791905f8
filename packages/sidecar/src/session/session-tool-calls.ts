// A session's tool calls: the tool a chunk's tool_choice forces, the calls found
// in the model's text, and running them (server, client, delegate) into context.
import { ErrorCode, type InputChunk, type SessionConfig, type ToolSpec } from "@microturn/protocol";
import type { EngineCapabilities } from "../engines/engine.js";
import { SessionFault } from "../errors.js";
import { DELEGATE_TOOL_NAME, parseDelegateArguments } from "../tools/delegate.js";
import { ToolError } from "../tools/errors.js";
import { resolveDelivery, type ContextDeliveries } from "./context-deliveries.js";
import type { ConversationEntry, ServerPayload, SessionBackground, SessionTools, ToolCallExtractor } from "./ports.js";

export interface SessionToolCallsOptions {
  capabilities: Pick<EngineCapabilities, "engine" | "forcedToolCalls">;
  /** Every tool announced to the model (client, server, delegate): what tool_choice may name. */
  toolSpecs?: readonly ToolSpec[];
  /** The client's tools (a call to one goes to the client) and the delivery for a delegate call that names none. */
  config: Pick<SessionConfig, "tools" | "defaultDelivery">;
  /** Without it the model's text is passed through untouched. */
  tools?: SessionTools;
  /** The session's background; throws (BACKGROUND_UNAVAILABLE) when it has none. */
  background: () => SessionBackground;
  /** The conversation so far, the context a delegated task starts from. */
  conversation: () => readonly ConversationEntry[];
  deliveries: Pick<ContextDeliveries, "addToolResult">;
  /** Input time reached so far: a tool result is deliverable from then. */
  inputTimeMs: () => number;
  emit: (event: ServerPayload) => void;
  reportError: (err: unknown, context: { seq?: number }) => void;
}

export class SessionToolCalls {
  private readonly opts: SessionToolCallsOptions;
  private readonly extractor: ToolCallExtractor | undefined;

  constructor(options: SessionToolCallsOptions) {
    this.opts = options;
    this.extractor = options.tools?.createExtractor();
  }

  /** The tool a chunk's tool_choice names; refused (the chunk with it) when the engine or the session cannot. */
  forcedTool(chunk: InputChunk): ToolSpec {
    const name = chunk.toolChoice;
    if (!this.opts.capabilities.forcedToolCalls) {
      throw new SessionFault(ErrorCode.ERROR_CODE_FAILED_PRECONDITION, `input seq ${chunk.seq}: engine ${this.opts.capabilities.engine} cannot force a tool call; resend without tool_choice`, {
        seq: chunk.seq,
      });
    }
    const spec = this.opts.toolSpecs?.find((t) => t.name === name);
    if (!spec) {
      const known = (this.opts.toolSpecs ?? []).map((t) => t.name).join(", ") || "none";
      throw new SessionFault(ErrorCode.ERROR_CODE_INVALID_ARGUMENT, `input seq ${chunk.seq}: tool_choice "${name}" names no tool of this session (tools: ${known})`, { seq: chunk.seq });
    }
    return spec;
  }

  /** Hands a client's ToolResult to the call waiting for it. */
  toolResult(callId: string, outputJson: string, isError: boolean): void {
    if (!this.opts.tools) throw new SessionFault(ErrorCode.ERROR_CODE_NOT_FOUND, `tool result for unknown call ${callId}: this session has no tools`);
    this.opts.tools.resolveClientTool(callId, outputJson, isError);
  }

  /** Strips tool-call markup from model text and starts the calls it holds. */
  visibleText(delta: string, seq: number): string {
    if (!this.extractor) return delta;
    const { text, calls, errors } = this.extractor.push(delta);
    for (const message of errors) this.opts.reportError(new SessionFault(ErrorCode.ERROR_CODE_INVALID_ARGUMENT, `model emitted a malformed tool call: ${message}`, { seq }), { seq });
    for (const call of calls) void this.runToolCall(call.name, call.argumentsJson, seq);
    return text;
  }

  /** A tool's result (or failure) waits in the deliveries for the next boundary; a delegate call starts a background task instead. */
  async runToolCall(name: string, argumentsJson: string, seq: number): Promise<void> {
    const tools = this.opts.tools!;
    if (name === DELEGATE_TOOL_NAME) {
      try {
        const args = parseDelegateArguments(argumentsJson);
        this.opts.background().start({
          task: args.task,
          delivery: resolveDelivery(args.delivery, this.opts.config.defaultDelivery),
          ...(args.timeoutMs ? { timeoutMs: args.timeoutMs } : {}),
          fromModel: true,
          conversation: [...this.opts.conversation()],
        });
      } catch (err) {
        this.opts.reportError(ToolError.isInstance(err) ? new SessionFault(ErrorCode.ERROR_CODE_INVALID_ARGUMENT, err.message, { seq }) : err, { seq });
      }
      return;
    }
    const spec = this.opts.config.tools.find((t) => t.name === name);
    let outcome;
    if (tools.isServerTool(name)) outcome = await tools.runServerTool(name, argumentsJson, AbortSignal.timeout(60_000));
    else if (spec) outcome = await tools.callClientTool(spec, argumentsJson, seq, (event) => this.opts.emit(event));
    else outcome = { ok: false as const, error: `unknown tool "${name}"` };
    this.opts.deliveries.addToolResult(name, outcome.ok ? outcome.output : `error: ${outcome.error}`, this.opts.inputTimeMs());
  }
}
