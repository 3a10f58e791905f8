// Streaming parser for the interaction model's tool-call markup,
// `<tool_call>{"name": "...", "arguments": {...}}</tool_call>` (Hermes/Qwen
// style). Fed text deltas as they are generated, across micro-turns; returns
// the visible text with the markup removed, complete calls, and typed errors
// for calls that are not usable. Text that might be the start of a tag is held
// back until the next delta decides it.
import { ToolError, TOOL_NAME_PATTERN } from "./errors.js";

export const TOOL_CALL_OPEN = "<tool_call>";
export const TOOL_CALL_CLOSE = "</tool_call>";

export interface ParsedToolCall {
  name: string;
  /** Arguments as a JSON object text ("{}" when the call gave none). */
  argumentsJson: string;
}

export interface ToolCallParseResult {
  /** Visible text released by this delta (markup removed). */
  text: string;
  calls: ParsedToolCall[];
  /** Calls that could not be used (code "malformed_call"), with their raw text in the message. */
  errors: ToolError[];
}

export interface ToolCallParserOptions {
  /** A call body longer than this is dropped with an error. Default 16384. */
  maxCallChars?: number;
}

/** Length of the longest suffix of `text` that is a proper prefix of `tag`. */
function partialTagLength(text: string, tag: string): number {
  for (let n = Math.min(text.length, tag.length - 1); n > 0; n--) {
    if (text.endsWith(tag.slice(0, n))) return n;
  }
  return 0;
}

function preview(raw: string): string {
  const flat = raw.trim().replace(/\s+/g, " ");
  return flat.length > 120 ? `${flat.slice(0, 117)}...` : flat;
}

/** Reads one call body; throws ToolError("malformed_call"). */
export function parseToolCallBody(body: string): ParsedToolCall {
  let value: unknown;
  try {
    value = JSON.parse(body.trim());
  } catch (err) {
    throw new ToolError("malformed_call", `tool call is not JSON (${(err as Error).message}): ${preview(body)}`, { cause: err });
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ToolError("malformed_call", `tool call must be a JSON object with "name" and "arguments": ${preview(body)}`);
  }
  const record = value as Record<string, unknown>;
  const name = record.name;
  if (typeof name !== "string" || !TOOL_NAME_PATTERN.test(name)) {
    throw new ToolError("malformed_call", `tool call lacks a valid "name": ${preview(body)}`);
  }
  // Some models write "parameters" (Llama style) or double-encode the arguments as a string.
  let args = record.arguments ?? record.parameters ?? {};
  if (typeof args === "string") {
    try {
      args = args.trim() === "" ? {} : JSON.parse(args);
    } catch (err) {
      throw new ToolError("malformed_call", `arguments of "${name}" are a string that is not JSON: ${preview(args as string)}`, { toolName: name, cause: err });
    }
  }
  if (typeof args !== "object" || args === null || Array.isArray(args)) {
    throw new ToolError("malformed_call", `arguments of "${name}" must be a JSON object`, { toolName: name });
  }
  return { name, argumentsJson: JSON.stringify(args) };
}

/**
 * How far past a `</tool_call>` that sits inside a JSON string the parser
 * looks for the call's real end (the string closing, then the tag) before it
 * takes that one as the end after all (a call whose quotes do not balance).
 */
export const IN_STRING_CLOSE_LOOKAHEAD = 256;

/**
 * Where the call in `body` ends: the first `</tool_call>` outside a JSON
 * string; or the first one inside a string when no other follows within the
 * lookahead (or the stream ended, `final`). -1: not known yet. Decided by the
 * text alone, so every split of the stream gives the same answer.
 */
function callEnd(body: string, final: boolean): number {
  const first = body.indexOf(TOOL_CALL_CLOSE);
  if (first === -1) return -1;
  let inString = false;
  let inStringClose = -1;
  for (let i = 0; i < body.length; i++) {
    const c = body.charCodeAt(i);
    if (inString) {
      if (c === 0x5c /* \ */) i++;
      else if (c === 0x22 /* " */) inString = false;
      else if (c === 0x3c /* < */ && inStringClose === -1 && body.startsWith(TOOL_CALL_CLOSE, i)) inStringClose = i;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x3c && body.startsWith(TOOL_CALL_CLOSE, i)) {
      return inStringClose !== -1 && i - inStringClose > IN_STRING_CLOSE_LOOKAHEAD ? inStringClose : i;
    }
    if (inStringClose !== -1 && i - inStringClose > IN_STRING_CLOSE_LOOKAHEAD) return inStringClose;
  }
  return final ? inStringClose : -1;
}

export class ToolCallParser {
  private buffer = "";
  private inside = false;
  /** True while skipping the rest of an over-long call. */
  private overflowed = false;
  private readonly maxCallChars: number;

  constructor(options: ToolCallParserOptions = {}) {
    this.maxCallChars = options.maxCallChars ?? 16_384;
  }

  /** True while a call has opened and not yet closed (the model is mid-call). */
  get inCall(): boolean {
    return this.inside;
  }

  push(delta: string): ToolCallParseResult {
    const out: ToolCallParseResult = { text: "", calls: [], errors: [] };
    this.buffer += delta;
    for (;;) {
      if (!this.inside) {
        const open = this.buffer.indexOf(TOOL_CALL_OPEN);
        if (open !== -1) {
          out.text += this.buffer.slice(0, open);
          this.buffer = this.buffer.slice(open + TOOL_CALL_OPEN.length);
          this.inside = true;
          continue;
        }
        const hold = partialTagLength(this.buffer, TOOL_CALL_OPEN);
        out.text += this.buffer.slice(0, this.buffer.length - hold);
        this.buffer = this.buffer.slice(this.buffer.length - hold);
        return out;
      }
      // Skipping an over-long call, its text is not kept: its end is the next tag wherever it sits.
      const close = this.overflowed ? this.buffer.indexOf(TOOL_CALL_CLOSE) : callEnd(this.buffer, false);
      if (close !== -1) {
        this.closeCall(close, out);
        continue;
      }
      if (!this.overflowed && this.buffer.length > this.maxCallChars) {
        out.errors.push(new ToolError("malformed_call", `tool call longer than ${this.maxCallChars} characters; dropped: ${preview(this.buffer)}`));
        this.overflowed = true;
      }
      if (this.overflowed) {
        // Keep only what could be the start of the closing tag.
        this.buffer = this.buffer.slice(this.buffer.length - partialTagLength(this.buffer, TOOL_CALL_CLOSE));
      }
      return out;
    }
  }

  /** Ends the call at `close` in the buffer: a call, or an error for a body too long or not usable. */
  private closeCall(close: number, out: ToolCallParseResult): void {
    const body = this.buffer.slice(0, close);
    this.buffer = this.buffer.slice(close + TOOL_CALL_CLOSE.length);
    this.inside = false;
    if (this.overflowed) {
      this.overflowed = false;
      return;
    }
    // Checked here too, not only while the call is open: a long call that arrives whole is dropped as one in pieces is.
    if (body.length > this.maxCallChars) {
      out.errors.push(new ToolError("malformed_call", `tool call longer than ${this.maxCallChars} characters; dropped: ${preview(body)}`));
      return;
    }
    try {
      out.calls.push(parseToolCallBody(body));
    } catch (err) {
      out.errors.push(err as ToolError);
    }
  }

  /**
   * The model's utterance ended (it yielded the turn): a call whose only end so
   * far is a closing tag inside a JSON string ends there after all, without
   * waiting for the lookahead, since no more of it is coming; what followed the
   * tag is released. Anything else stays as it is (a call still open waits).
   */
  settle(): ToolCallParseResult {
    const out: ToolCallParseResult = { text: "", calls: [], errors: [] };
    for (let close = this.pendingEnd(); close !== -1; close = this.pendingEnd()) {
      this.closeCall(close, out);
      const rest = this.push("");
      out.text += rest.text;
      out.calls.push(...rest.calls);
      out.errors.push(...rest.errors);
    }
    return out;
  }

  /** The end of the open call were no more text to come; -1 when it has none. */
  private pendingEnd(): number {
    return this.inside && !this.overflowed ? callEnd(this.buffer, true) : -1;
  }

  /** End of the stream: releases held-back text; an unclosed call is an error. */
  flush(): ToolCallParseResult {
    // A call whose only end sits inside a string (its quotes never balanced) ends there after all.
    const out = this.settle();
    if (this.inside) {
      if (!this.overflowed) out.errors.push(new ToolError("malformed_call", `tool call never closed with ${TOOL_CALL_CLOSE}: ${preview(this.buffer)}`));
    } else {
      out.text += this.buffer;
    }
    this.reset();
    return out;
  }

  reset(): void {
    this.buffer = "";
    this.inside = false;
    this.overflowed = false;
  }

  /** The parser's state now; calling the result puts it back (a micro-turn whose answer was taken back). */
  checkpoint(): () => void {
    const { buffer, inside, overflowed } = this;
    return () => {
      this.buffer = buffer;
      this.inside = inside;
      this.overflowed = overflowed;
    };
  }

  /** Drops a call under way and any held-back text; returns what was dropped of the call ("" outside one). */
  abandon(): string {
    const dropped = this.inside ? this.buffer : "";
    this.reset();
    return dropped;
  }
}
