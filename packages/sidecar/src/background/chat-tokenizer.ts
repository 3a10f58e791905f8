// Client-side chat tokenization for SGLang's native gRPC service, which takes
// token ids in and gives token ids out (no text). Renders the model's chat
// template (Jinja, from tokenizer_config.json) and tokenizes with the model's
// tokenizer.json, both in pure JS; decodes output ids incrementally.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { Template } from "@huggingface/jinja";
import { Tokenizer } from "@huggingface/tokenizers";
import type { ChatMessage, ChatToolSpec } from "./client.js";
import { BackgroundError } from "./errors.js";

/** Turns generated ids into text as they arrive, never splitting a character. */
export interface StreamingDecoder {
  /** New text made complete by these ids (may be empty). */
  push(ids: readonly number[]): string;
  /** Whatever is left at the end of the stream. */
  flush(): string;
}

export interface ChatTokenizer {
  /** The prompt for these messages, ready for generation (assistant turn opened). */
  encodeChat(messages: readonly ChatMessage[], tools?: readonly ChatToolSpec[]): { inputIds: number[]; text: string };
  createDecoder(): StreamingDecoder;
}

type TokenizerConfig = Record<string, unknown> & { chat_template?: unknown; bos_token?: unknown; eos_token?: unknown };

function tokenText(token: unknown): string | undefined {
  if (typeof token === "string") return token;
  if (typeof token === "object" && token !== null && typeof (token as { content?: unknown }).content === "string") return (token as { content: string }).content;
  return undefined;
}

/** The chat template: a string, or the "default" entry of a named list. */
function pickTemplate(config: TokenizerConfig, override: string | undefined): string {
  if (override !== undefined) return override;
  const t = config.chat_template;
  if (typeof t === "string") return t;
  if (Array.isArray(t)) {
    const named = t as Array<{ name?: string; template?: string }>;
    const found = named.find((x) => x.name === "default") ?? named[0];
    if (found?.template !== undefined) return found.template;
  }
  throw new BackgroundError("invalid_argument", "the tokenizer config has no chat_template; pass one (chat_template.jinja) explicitly");
}

/** Templates expect tool-call arguments as objects, as transformers passes them. */
function templateMessages(messages: readonly ChatMessage[]): unknown[] {
  return messages.map((m) => {
    if (m.role !== "assistant" || m.tool_calls === undefined) return m;
    return {
      ...m,
      content: m.content ?? "",
      tool_calls: m.tool_calls.map((c) => {
        let args: unknown = c.function.arguments;
        try {
          args = JSON.parse(c.function.arguments);
        } catch {
          // A model's malformed arguments stay text; the template prints them as they are.
        }
        return { id: c.id, type: "function", function: { name: c.function.name, arguments: args } };
      }),
    };
  });
}

export class HfChatTokenizer implements ChatTokenizer {
  private readonly tokenizer: Tokenizer;
  private readonly template: Template;
  private readonly specials: Record<string, string>;

  constructor(tokenizerJson: object, tokenizerConfig: TokenizerConfig, chatTemplate?: string) {
    try {
      this.tokenizer = new Tokenizer(tokenizerJson, tokenizerConfig);
      this.template = new Template(pickTemplate(tokenizerConfig, chatTemplate));
    } catch (err) {
      if (BackgroundError.isInstance(err)) throw err;
      throw new BackgroundError("invalid_argument", `unusable tokenizer files: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    this.specials = {};
    for (const key of ["bos_token", "eos_token", "pad_token", "unk_token"]) {
      const text = tokenText(tokenizerConfig[key]);
      if (text !== undefined) this.specials[key] = text;
    }
  }

  /**
   * Builds from a model's tokenizer files by name: tokenizer.json,
   * tokenizer_config.json, and the chat template from chat_template.jinja or
   * chat_template.json when the config lacks one (newer models keep it apart).
   */
  static fromFiles(files: ReadonlyMap<string, Buffer | string>, source: string): HfChatTokenizer {
    const text = (name: string) => {
      const value = files.get(name);
      return value === undefined ? undefined : value.toString();
    };
    const json = (name: string): Record<string, unknown> => {
      const value = text(name);
      if (value === undefined) throw new BackgroundError("invalid_argument", `${source} has no ${name}`);
      try {
        return JSON.parse(value) as Record<string, unknown>;
      } catch (err) {
        throw new BackgroundError("invalid_argument", `${source}: ${name} is not JSON`, { cause: err });
      }
    };
    const tokenizerJson = json("tokenizer.json");
    const config = json("tokenizer_config.json") as TokenizerConfig;
    let template = text("chat_template.jinja");
    if (template === undefined && config.chat_template === undefined && files.has("chat_template.json")) {
      const separate = json("chat_template.json").chat_template;
      if (typeof separate === "string") template = separate;
    }
    return new HfChatTokenizer(tokenizerJson, config, template);
  }

  /** Loads the tokenizer files of a model directory (see fromFiles). */
  static async fromDirectory(dir: string): Promise<HfChatTokenizer> {
    const files = new Map<string, string>();
    for (const name of ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "chat_template.json"]) {
      const content = await readFile(join(dir, name), "utf8").catch(() => undefined);
      if (content !== undefined) files.set(name, content);
    }
    return HfChatTokenizer.fromFiles(files, dir);
  }

  encodeChat(messages: readonly ChatMessage[], tools?: readonly ChatToolSpec[]): { inputIds: number[]; text: string } {
    let text: string;
    try {
      text = this.template.render({
        messages: templateMessages(messages),
        ...(tools !== undefined && tools.length > 0 ? { tools } : {}),
        add_generation_prompt: true,
        ...this.specials,
      });
    } catch (err) {
      throw new BackgroundError("invalid_argument", `chat template failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    // The template writes BOS and the other markers itself.
    const inputIds = this.tokenizer.encode(text, { add_special_tokens: false }).ids;
    return { inputIds, text };
  }

  decode(ids: readonly number[]): string {
    if (ids.length === 0) return "";
    return this.tokenizer.decode([...ids], { skip_special_tokens: true });
  }

  createDecoder(): StreamingDecoder {
    return new IncrementalDecoder((ids) => this.decode(ids));
  }
}

/**
 * Decodes a window of recent ids and emits only the new suffix: byte-level
 * tokens may end mid-character, and some decoders change earlier text when
 * the next token arrives (spaces, merges), so text is released only once the
 * window's decoding no longer ends in a replacement character.
 */
export class IncrementalDecoder implements StreamingDecoder {
  private readonly ids: number[] = [];
  private prefixOffset = 0;
  private readOffset = 0;

  constructor(private readonly decode: (ids: readonly number[]) => string) {}

  push(newIds: readonly number[]): string {
    this.ids.push(...newIds);
    const prefixText = this.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const fullText = this.decode(this.ids.slice(this.prefixOffset));
    if (fullText.length > prefixText.length && !fullText.endsWith("\uFFFD")) {
      this.prefixOffset = this.readOffset;
      this.readOffset = this.ids.length;
      return fullText.slice(prefixText.length);
    }
    return "";
  }

  flush(): string {
    const prefixText = this.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const fullText = this.decode(this.ids.slice(this.prefixOffset));
    this.prefixOffset = this.readOffset = this.ids.length;
    return fullText.length > prefixText.length ? fullText.slice(prefixText.length) : "";
  }
}
