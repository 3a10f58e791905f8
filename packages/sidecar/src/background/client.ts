// The transport-neutral surface of a background model: OpenAI-shaped chat
// messages in, a stream of content / tool-call / done deltas out.

/** A tool the background model may call, in OpenAI's chat-completions shape. */
export interface ChatToolSpec {
  type: "function";
  function: { name: string; description: string; parameters: Record<string, unknown> };
}

export interface ChatToolCall {
  id: string;
  type: "function";
  function: { name: string; arguments: string };
}

export type ChatMessage =
  | { role: "system"; content: string }
  | { role: "user"; content: string }
  | { role: "assistant"; content: string | null; tool_calls?: ChatToolCall[] }
  | { role: "tool"; tool_call_id: string; content: string };

export interface ChatUsage {
  promptTokens: number;
  completionTokens: number;
}

export type BackgroundDelta =
  | { type: "content"; text: string }
  /** A complete tool call (arguments fully accumulated). */
  | { type: "tool_call"; id: string; name: string; argumentsJson: string }
  /** Last delta of every successful stream. */
  | { type: "done"; finishReason: string; usage?: ChatUsage };

export interface StreamChatOptions {
  signal?: AbortSignal;
  tools?: ChatToolSpec[];
  /** Overrides the client's default model name. */
  model?: string;
  maxTokens?: number;
  temperature?: number;
}

/**
 * A background model. Implementations throw BackgroundError (from the
 * iterator) for every failure, including aborts.
 */
export interface BackgroundClient {
  streamChat(messages: ChatMessage[], options?: StreamChatOptions): AsyncIterable<BackgroundDelta>;
  /** Releases pooled connections. */
  close(): Promise<void>;
}
