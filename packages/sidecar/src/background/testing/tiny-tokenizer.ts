// A real but tiny byte-level BPE tokenizer (tokenizer.json) with a ChatML chat
// template and Hermes-style tool markup (tokenizer_config.json), built in
// memory for tests: every byte is a token, plus the chat's special tokens.
import { HfChatTokenizer } from "../chat-tokenizer.js";

/** GPT-2's byte-to-printable-character table used by ByteLevel tokenizers. */
function bytesToUnicode(): Map<number, string> {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  return new Map(bs.map((b, i) => [b, String.fromCodePoint(cs[i] as number)]));
}

export const TINY_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<tool_call>", "</tool_call>"] as const;

/** ChatML, with tools listed in the system turn the way Qwen's template does. */
export const TINY_CHAT_TEMPLATE = [
  "{% if tools %}<|im_start|>system\n{% if messages[0].role == 'system' %}{{ messages[0].content }}\n\n{% endif %}",
  "# Tools\n<tools>{% for tool in tools %}\n{{ tool | tojson }}{% endfor %}\n</tools>\n",
  'For each call write <tool_call>{"name": <name>, "arguments": <args>}</tool_call><|im_end|>\n',
  "{% elif messages[0].role == 'system' %}<|im_start|>system\n{{ messages[0].content }}<|im_end|>\n{% endif %}",
  "{% for m in messages %}",
  "{% if m.role == 'user' %}<|im_start|>user\n{{ m.content }}<|im_end|>\n",
  "{% elif m.role == 'assistant' %}<|im_start|>assistant\n{{ m.content }}",
  '{% if m.tool_calls %}{% for c in m.tool_calls %}<tool_call>{"name": "{{ c.function.name }}", "arguments": {{ c.function.arguments | tojson }}}</tool_call>{% endfor %}{% endif %}<|im_end|>\n',
  "{% elif m.role == 'tool' %}<|im_start|>user\n<tool_response>{{ m.content }}</tool_response><|im_end|>\n",
  "{% endif %}{% endfor %}",
  "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
].join("");

export function tinyTokenizerFiles(): { tokenizerJson: object; tokenizerConfig: Record<string, unknown> } {
  const vocab: Record<string, number> = {};
  for (const [byte, char] of bytesToUnicode()) vocab[char] = byte;
  const addedTokens = TINY_SPECIAL_TOKENS.map((content, i) => {
    vocab[content] = 256 + i;
    // Like Qwen: the tool-call tags are added tokens but not "special", so decoding keeps them.
    return { id: 256 + i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: !content.includes("tool_call") };
  });
  const tokenizerJson = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: null,
    pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: null,
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab, merges: [] },
  };
  const tokenizerConfig = {
    tokenizer_class: "PreTrainedTokenizerFast",
    chat_template: TINY_CHAT_TEMPLATE,
    eos_token: "<|im_end|>",
    pad_token: "<|endoftext|>",
    bos_token: null,
    model_max_length: 32768,
  };
  return { tokenizerJson, tokenizerConfig };
}

export function tinyChatTokenizer(): HfChatTokenizer {
  const { tokenizerJson, tokenizerConfig } = tinyTokenizerFiles();
  return new HfChatTokenizer(tokenizerJson, tokenizerConfig);
}
