// The background role served from the embedded engine's loaded model
// (`--background embedded`): each streamChat gets a fresh context, renders the
// chat as plain text, and streams the completion. No tool calls: small local
// models rarely follow a tool protocol, so `tools` are ignored.
import type { LlamaModel, Token } from "node-llama-cpp";
import type { BackgroundClient, BackgroundDelta, ChatMessage, StreamChatOptions } from "../../background/client.js";
import { BackgroundError } from "../../background/errors.js";
import { OutputText } from "./output-text.js";

export interface EmbeddedBackgroundOptions {
  threads: number;
  /** Context of one request, tokens; a longer conversation keeps its most recent part. */
  contextTokens: number;
  /** Completion length when the caller gives none. */
  defaultMaxTokens: number;
  seed?: number;
}

/** `<|role|>` headers, one message per block, then an open assistant block. */
export function renderChat(messages: readonly ChatMessage[]): string {
  let out = "";
  for (const m of messages) {
    const content = m.role === "assistant" ? (m.content ?? "") : m.content;
    out += `<|${m.role}|>\n${content}\n`;
  }
  return `${out}<|assistant|>\n`;
}

export class EmbeddedBackgroundClient implements BackgroundClient {
  constructor(
    private readonly model: LlamaModel,
    private readonly options: EmbeddedBackgroundOptions,
  ) {}

  async *streamChat(messages: ChatMessage[], options: StreamChatOptions = {}): AsyncGenerator<BackgroundDelta> {
    if (messages.length === 0) throw new BackgroundError("invalid_argument", "no messages to complete");
    const maxTokens = options.maxTokens ?? this.options.defaultMaxTokens;
    if (!Number.isInteger(maxTokens) || maxTokens <= 0) throw new BackgroundError("invalid_argument", `maxTokens must be a positive integer, got ${maxTokens}`);
    if (maxTokens >= this.options.contextTokens) throw new BackgroundError("invalid_argument", `maxTokens ${maxTokens} leaves no room in a ${this.options.contextTokens}-token context`);
    if (options.signal?.aborted) throw new BackgroundError("aborted", "background request aborted");
    const prompt = this.model.tokenize(renderChat(messages), false);
    const room = this.options.contextTokens - maxTokens - 1;
    const bos = this.model.tokens.bos;
    const input: Token[] = [...(bos == null ? [] : [bos]), ...prompt.slice(Math.max(0, prompt.length - room))];
    let context;
    try {
      context = await this.model.createContext({ contextSize: this.options.contextTokens, sequences: 1, threads: this.options.threads, flashAttention: false });
    } catch (cause) {
      throw new BackgroundError("unavailable", `no memory for a background context: ${(cause as Error).message}`, { cause });
    }
    try {
      const sequence = context.getSequence();
      const sampling = { temperature: options.temperature ?? 0, ...(this.options.seed === undefined ? {} : { seed: this.options.seed }) };
      const sample = async (tokens: Token[]): Promise<Token | undefined> => {
        const last = tokens.length - 1;
        const items = tokens.map((t, i) => (i === last ? ([t, { generateNext: { token: true, options: sampling } }] as const) : t));
        const results = await sequence.controlledEvaluate(items as Parameters<typeof sequence.controlledEvaluate>[0]);
        return results[last]?.next.token ?? undefined;
      };
      const output = new OutputText((t) => this.model.detokenize(t), []);
      let next = await sample(input);
      let finishReason = "length";
      while (output.tokens.length < maxTokens) {
        if (options.signal?.aborted) throw new BackgroundError("aborted", "background request aborted");
        if (next === undefined || this.model.isEogToken(next)) {
          finishReason = "stop";
          break;
        }
        output.push(next);
        const { text } = output.advance();
        if (text) yield { type: "content", text };
        if (output.tokens.length < maxTokens) next = await sample([next]);
      }
      const rest = output.flush();
      if (rest) yield { type: "content", text: rest };
      yield { type: "done", finishReason, usage: { promptTokens: input.length, completionTokens: output.tokens.length } };
    } finally {
      await context.dispose();
    }
  }

  /** The model belongs to the engine, which frees it. */
  async close(): Promise<void> {}
}
