import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { HfChatTokenizer, IncrementalDecoder } from "./chat-tokenizer.js";
import { BackgroundError } from "./errors.js";
import { tinyChatTokenizer, tinyTokenizerFiles } from "./testing/tiny-tokenizer.js";

describe("HfChatTokenizer", () => {
  const tokenizer = tinyChatTokenizer();

  it("renders the chat template, opens the assistant turn, and round-trips through the tokenizer", () => {
    const { text, inputIds } = tokenizer.encodeChat([
      { role: "system", content: "You are the background model." },
      { role: "user", content: "Plan a day in Lisbon — café first." },
    ]);
    expect(text).toBe("<|im_start|>system\nYou are the background model.<|im_end|>\n<|im_start|>user\nPlan a day in Lisbon — café first.<|im_end|>\n<|im_start|>assistant\n");
    expect(inputIds[0]).toBe(257); // <|im_start|> is one token
    expect(inputIds.every((id) => Number.isInteger(id) && id >= 0)).toBe(true);
    expect(tokenizer.decode(inputIds)).toBe(text.replace(/<\|im_start\|>|<\|im_end\|>/g, ""));
  });

  it("lists tools and renders earlier tool calls with object arguments", () => {
    const { text } = tokenizer.encodeChat(
      [
        { role: "user", content: "17*23?" },
        { role: "assistant", content: null, tool_calls: [{ id: "c1", type: "function", function: { name: "calculator", arguments: '{"expression":"17*23"}' } }] },
        { role: "tool", tool_call_id: "c1", content: '{"result":391}' },
      ],
      [{ type: "function", function: { name: "calculator", description: "math", parameters: { type: "object" } } }],
    );
    expect(text).toContain('"name": "calculator"');
    expect(text).toContain('<tool_call>{"name": "calculator", "arguments": {"expression": "17*23"}}</tool_call>');
    expect(text).toContain('<tool_response>{"result":391}</tool_response>');
  });

  it("loads from a model directory and refuses unusable files with a typed error", async () => {
    const dir = await mkdtemp(join(tmpdir(), "microturn-tok-"));
    try {
      const { tokenizerJson, tokenizerConfig } = tinyTokenizerFiles();
      await writeFile(join(dir, "tokenizer.json"), JSON.stringify(tokenizerJson));
      await writeFile(join(dir, "tokenizer_config.json"), JSON.stringify({ ...tokenizerConfig, chat_template: undefined }));
      await writeFile(join(dir, "chat_template.jinja"), "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}>");
      const loaded = await HfChatTokenizer.fromDirectory(dir);
      expect(loaded.encodeChat([{ role: "user", content: "hi" }]).text).toBe("[user] hi\n>");
      await expect(HfChatTokenizer.fromDirectory(join(dir, "missing"))).rejects.toThrow(BackgroundError);
      const { tokenizerJson: tj } = tinyTokenizerFiles();
      expect(() => new HfChatTokenizer(tj, { eos_token: "<|im_end|>" })).toThrow(/no chat_template/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("IncrementalDecoder", () => {
  it("never splits a multi-byte character and adds up to the whole decoding", () => {
    const tokenizer = tinyChatTokenizer();
    const text = "naïve café — 東京 🚀 done";
    const ids = tokenizer.encodeChat([{ role: "user", content: text }]).inputIds;
    const decoder = tokenizer.createDecoder();
    const parts = ids.map((id) => decoder.push([id]));
    parts.push(decoder.flush());
    expect(parts.join("")).toBe(tokenizer.decode(ids));
    expect(parts.some((p) => p.includes("\uFFFD"))).toBe(false);
    expect(parts).toContain("🚀");
  });

  it("releases a dangling partial character at flush", () => {
    const decoder = new IncrementalDecoder((ids) => (ids.length % 2 === 1 ? "x\uFFFD" : "xy").slice(0, ids.length === 0 ? 0 : undefined));
    expect(decoder.push([1])).toBe("");
    expect(decoder.flush()).toBe("x\uFFFD");
  });
});
