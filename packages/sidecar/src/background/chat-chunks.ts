// OpenAI chat-completion chunks (`chat.completion.chunk` objects) read into
// background deltas, and the request body that asks for them: one reader for
// every transport that carries them (SSE over HTTP, SGLang's native gRPC
// ChatComplete, which passes the same JSON through).
import { randomBytes } from "node:crypto";
import type { BackgroundDelta, ChatMessage, ChatUsage, StreamChatOptions } from "./client.js";
import { BackgroundError } from "./errors.js";

/** Longest answer text kept from one task, characters; what the interaction model can weave in is far less. */
export const MAX_ANSWER_CHARS = 200_000;
/** Longest single streamed event, and longest tool-call arguments, characters. */
export const MAX_EVENT_CHARS = 1_000_000;

/** One piece of a streamed tool call. Servers that keep unset fields write them as null (SGLang sends later pieces with id and name null). */
interface ToolCallPiece {
  index?: number | null;
  id?: string | null;
  function?: { name?: string | null; arguments?: string | null } | null;
}

interface ChunkJson {
  choices?: Array<{
    delta?: {
      content?: string | null;
      tool_calls?: ToolCallPiece[];
    };
    finish_reason?: string | null;
  } | null>;
  usage?: { prompt_tokens?: number; completion_tokens?: number } | null;
  error?: { message?: string } | string | null;
}

interface ToolCallDraft {
  id: string;
  name: string;
  arguments: string;
}

/** The streamed chat-completions request for `messages`. */
export function chatCompletionBody(defaultModel: string, messages: ChatMessage[], options: StreamChatOptions): Record<string, unknown> {
  const body: Record<string, unknown> = {
    model: options.model ?? defaultModel,
    messages,
    stream: true,
    stream_options: { include_usage: true },
  };
  if (options.tools !== undefined && options.tools.length > 0) body.tools = options.tools;
  if (options.maxTokens !== undefined) body.max_tokens = options.maxTokens;
  if (options.temperature !== undefined) body.temperature = options.temperature;
  return body;
}

/**
 * One answer's chunks, in order: `read` each chunk's JSON text (yielding its
 * content), then `end` for the tool calls and `done`. Throws BackgroundError
 * for a chunk that is not one, an error reported mid-stream, or an answer the
 * server aborted.
 */
export class ChatChunkReader {
  private readonly drafts = new Map<number, ToolCallDraft>();
  /** Tool calls by their id, for servers that stream parallel calls without an index. */
  private readonly indexById = new Map<string, number>();
  private lastIndex = 0;
  private contentChars = 0;
  private finishReason: string | undefined;
  private usage: ChatUsage | undefined;
  /** Ids for calls the server gave none: unique to this answer, as every round's results go back in one conversation. */
  private readonly answerId = randomBytes(4).toString("hex");

  constructor(private readonly what: string) {}

  /** Whether a chunk carried a finish reason. */
  get finished(): boolean {
    return this.finishReason !== undefined;
  }

  /** Whether the usage chunk came (with stream_options.include_usage it follows the finish reason, last before [DONE]). */
  get hasUsage(): boolean {
    return this.usage !== undefined;
  }

  /** Reads one chunk; returns true when the answer reached MAX_ANSWER_CHARS (it ends there: read no more). */
  *read(data: string): Generator<BackgroundDelta, boolean> {
    const what = this.what;
    let chunk: ChunkJson;
    try {
      chunk = JSON.parse(data) as ChunkJson;
    } catch (err) {
      throw new BackgroundError("bad_response", `${what} sent an event that is not JSON: ${data.slice(0, 200)}`, { cause: err });
    }
    if (chunk === null || typeof chunk !== "object") throw new BackgroundError("bad_response", `${what} sent an event that is not an object: ${data.slice(0, 200)}`);
    if (chunk.error != null) {
      const message = typeof chunk.error === "string" ? chunk.error : (chunk.error.message ?? JSON.stringify(chunk.error));
      throw new BackgroundError("bad_response", `${what} reported an error mid-stream: ${message}`);
    }
    if (chunk.usage != null) {
      this.usage = { promptTokens: chunk.usage.prompt_tokens ?? 0, completionTokens: chunk.usage.completion_tokens ?? 0 };
    }
    const choice = chunk.choices?.[0];
    if (choice === undefined || choice === null) return false;
    const content = choice.delta?.content;
    if (typeof content === "string" && content !== "") {
      // An answer past the cap ends there, as one cut by max_tokens would (not every server takes max_tokens).
      const room = MAX_ANSWER_CHARS - this.contentChars;
      this.contentChars += content.length;
      if (content.length >= room) {
        if (room > 0) yield { type: "content", text: content.slice(0, room) };
        this.finishReason = "length";
        return true;
      }
      yield { type: "content", text: content };
    }
    for (const call of choice.delta?.tool_calls ?? []) this.addCallPiece(call);
    if (choice.finish_reason != null) this.finishReason = choice.finish_reason;
    // SGLang's word for a request it gave up (an /abort_request, a scheduler that stopped): not an answer.
    if (this.finishReason === "abort") throw new BackgroundError("unavailable", `${what} aborted the request`);
    return false;
  }

  private addCallPiece(call: ToolCallPiece): void {
    let index = call.index ?? undefined;
    if (index === undefined) {
      // Without an index a new id starts a new call; a piece with no id continues the last one.
      const known = call.id ? this.indexById.get(call.id) : this.lastIndex;
      index = known ?? (this.drafts.size === 0 ? 0 : Math.max(...this.drafts.keys()) + 1);
    }
    this.lastIndex = index;
    if (call.id) this.indexById.set(call.id, index);
    let draft = this.drafts.get(index);
    if (draft === undefined) {
      draft = { id: "", name: "", arguments: "" };
      this.drafts.set(index, draft);
    }
    // The id and name come whole in the call's first piece (later ones repeat them, or leave them out or null);
    // the arguments come in pieces.
    if (typeof call.id === "string" && call.id !== "" && draft.id === "") draft.id = call.id;
    const name = call.function?.name;
    if (typeof name === "string" && name !== "" && draft.name === "") draft.name = name;
    const args = call.function?.arguments;
    if (typeof args === "string") draft.arguments += args;
    if (draft.arguments.length > MAX_EVENT_CHARS) throw new BackgroundError("bad_response", `${this.what} streamed tool-call arguments over ${MAX_EVENT_CHARS} characters`);
  }

  /** The answer is complete: its tool calls, then `done`. */
  *end(): Generator<BackgroundDelta> {
    for (const [index, draft] of [...this.drafts.entries()].sort((a, b) => a[0] - b[0])) {
      if (draft.name === "") throw new BackgroundError("bad_response", `${this.what} streamed a tool call without a name (index ${index})`);
      yield { type: "tool_call", id: draft.id === "" ? `call_${this.answerId}_${index}` : draft.id, name: draft.name, argumentsJson: draft.arguments === "" ? "{}" : draft.arguments };
    }
    yield { type: "done", finishReason: this.finishReason ?? "stop", ...(this.usage === undefined ? {} : { usage: this.usage }) };
  }
}
