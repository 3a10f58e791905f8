import { describe, expect, it } from "vitest";
import { ToolError } from "./errors.js";
import { ToolCallParser, type ToolCallParseResult } from "./tool-call-parser.js";

function feed(parser: ToolCallParser, deltas: string[], flush = true): ToolCallParseResult {
  const all: ToolCallParseResult = { text: "", calls: [], errors: [] };
  for (const d of [...deltas.map((x) => parser.push(x)), ...(flush ? [parser.flush()] : [])]) {
    all.text += d.text;
    all.calls.push(...d.calls);
    all.errors.push(...d.errors);
  }
  return all;
}

const CALL = '<tool_call>{"name": "get_time", "arguments": {"timezone": "Europe/Lisbon"}}</tool_call>';

describe("ToolCallParser", () => {
  it("removes a whole call from the text and returns it", () => {
    const out = feed(new ToolCallParser(), [`Let me check. ${CALL} One moment.`]);
    expect(out.text).toBe("Let me check.  One moment.");
    expect(out.calls).toEqual([{ name: "get_time", argumentsJson: '{"timezone":"Europe/Lisbon"}' }]);
    expect(out.errors).toEqual([]);
  });

  it("gives the same result at every split of the stream, even one character at a time", () => {
    const stream = `Sure${CALL}and <b>bold</b> < tool text ${CALL.replace("get_time", "calculator")}.`;
    const whole = feed(new ToolCallParser(), [stream]);
    expect(whole.calls).toHaveLength(2);
    expect(whole.text).toBe("Sureand <b>bold</b> < tool text .");
    for (let cut = 1; cut < stream.length; cut++) {
      expect(feed(new ToolCallParser(), [stream.slice(0, cut), stream.slice(cut)])).toEqual(whole);
    }
    expect(feed(new ToolCallParser(), stream.split(""))).toEqual(whole);
  });

  it("holds back a partial opening tag and releases it when it turns out to be text", () => {
    const parser = new ToolCallParser();
    expect(parser.push("Hello <tool_").text).toBe("Hello ");
    expect(parser.push("box> there").text).toBe("<tool_box> there");
    expect(parser.push("trailing <tool").text).toBe("trailing ");
    expect(parser.flush().text).toBe("<tool");
  });

  it("keeps a call open across micro-turns and reports inCall meanwhile", () => {
    const parser = new ToolCallParser();
    const first = parser.push('ok <tool_call>{"name": "delegate", "argu');
    expect(first.text).toBe("ok ");
    expect(first.calls).toEqual([]);
    expect(parser.inCall).toBe(true);
    const second = parser.push('ments": {"task": "plan a trip", "delivery": "when_idle"}}</tool_call> done');
    expect(second.calls).toEqual([{ name: "delegate", argumentsJson: '{"task":"plan a trip","delivery":"when_idle"}' }]);
    expect(second.text).toBe(" done");
    expect(parser.inCall).toBe(false);
  });

  it("reports malformed JSON, a missing name and bad arguments as typed errors, not throws", () => {
    const out = feed(new ToolCallParser(), [
      "a<tool_call>{not json}</tool_call>b",
      '<tool_call>{"arguments": {}}</tool_call>c',
      '<tool_call>{"name": "x", "arguments": [1]}</tool_call>d',
      '<tool_call>{"name": "bad name!", "arguments": {}}</tool_call>e',
    ]);
    expect(out.text).toBe("abcde");
    expect(out.calls).toEqual([]);
    expect(out.errors).toHaveLength(4);
    for (const err of out.errors) {
      expect(ToolError.isInstance(err)).toBe(true);
      expect(err.code).toBe("malformed_call");
    }
    expect(out.errors[0]?.message).toContain("not JSON");
    expect(out.errors[1]?.message).toContain('"name"');
  });

  it("accepts arguments given as a JSON string, as 'parameters', or not at all", () => {
    const out = feed(new ToolCallParser(), [
      '<tool_call>{"name": "a", "arguments": "{\\"x\\": 1}"}</tool_call>',
      '<tool_call>{"name": "b", "parameters": {"y": 2}}</tool_call>',
      '<tool_call>\n{"name": "c"}\n</tool_call>',
    ]);
    expect(out.calls).toEqual([
      { name: "a", argumentsJson: '{"x":1}' },
      { name: "b", argumentsJson: '{"y":2}' },
      { name: "c", argumentsJson: "{}" },
    ]);
  });

  it("reports a call that never closes at flush, and drops an over-long call", () => {
    const open = feed(new ToolCallParser(), ['text <tool_call>{"name": "a"']);
    expect(open.text).toBe("text ");
    expect(open.errors[0]?.message).toContain("never closed");

    const parser = new ToolCallParser({ maxCallChars: 50 });
    const long = feed(parser, ["<tool_call>", `{"name": "a", "arguments": {"x": "${"z".repeat(200)}"}}`, "</tool_call> after"]);
    expect(long.calls).toEqual([]);
    expect(long.errors).toHaveLength(1);
    expect(long.errors[0]?.message).toContain("longer than 50");
    expect(long.text).toBe(" after");
  });

  it("drops an over-long call the same whether it arrives whole or in pieces", () => {
    const body = `{"name": "a", "arguments": {"x": "${"z".repeat(200)}"}}`;
    const whole = feed(new ToolCallParser({ maxCallChars: 50 }), [`<tool_call>${body}</tool_call> after`]);
    expect(whole.calls).toEqual([]);
    expect(whole.errors.map((e) => e.message)).toEqual([expect.stringContaining("longer than 50")]);
    expect(whole.text).toBe(" after");
    const stream = `<tool_call>${body}</tool_call> after`;
    const pieces = feed(new ToolCallParser({ maxCallChars: 50 }), stream.match(/.{1,7}/gs)!);
    expect({ ...pieces, errors: pieces.errors.map((e) => e.message.split(":")[0]) }).toEqual({ ...whole, errors: ["tool call longer than 50 characters; dropped"] });
  });

  it("ends a call at the closing tag outside its strings: the tag quoted in an argument is part of it", () => {
    const call = '<tool_call>{"name": "search", "arguments": {"q": "what </tool_call> means in Qwen markup"}}</tool_call>';
    const stream = `Sure. ${call} ok`;
    const whole = feed(new ToolCallParser(), [stream]);
    expect(whole.errors).toEqual([]);
    expect(whole.calls).toEqual([{ name: "search", argumentsJson: '{"q":"what </tool_call> means in Qwen markup"}' }]);
    expect(whole.text).toBe("Sure.  ok");
    for (let cut = 1; cut < stream.length; cut += 3) {
      expect(feed(new ToolCallParser(), [stream.slice(0, cut), stream.slice(cut)])).toEqual(whole);
    }
  });

  it("ends a call whose quotes do not balance at its tag after all, when no other end follows (nor at the stream's end)", () => {
    const broken = '<tool_call>{"name": "search", "arguments": {"q": "unclosed}}</tool_call>';
    const later = ` then ${"more words ".repeat(30)}`;
    const out = feed(new ToolCallParser(), [`${broken}${later}`]);
    expect(out.calls).toEqual([]);
    expect(out.errors.map((e) => e.code)).toEqual(["malformed_call"]);
    expect(out.text).toBe(later);
    const atEnd = feed(new ToolCallParser(), [`${broken} bye`]);
    expect(atEnd.errors.map((e) => e.code)).toEqual(["malformed_call"]);
    expect(atEnd.text).toBe(" bye");
  });

  it("puts its state back to a checkpoint: a call open from before continues, held text is held again", () => {
    const parser = new ToolCallParser();
    parser.push('<tool_call>{"name": "t", ');
    const back = parser.checkpoint();
    // What a failed answer said, since taken back out of the model's memory.
    expect(parser.push('"arguments": {"x": 1}}</tool_call> gone <').calls).toHaveLength(1);
    back();
    expect(parser.inCall).toBe(true);
    const again = parser.push('"arguments": {}}</tool_call> hi');
    expect(again.calls).toEqual([{ name: "t", argumentsJson: "{}" }]);
    expect(again.text).toBe(" hi");

    const held = new ToolCallParser();
    expect(held.push("a <").text).toBe("a ");
    const mark = held.checkpoint();
    expect(held.push("b").text).toBe("<b");
    mark();
    expect(held.push("c").text).toBe("<c");
  });
});
