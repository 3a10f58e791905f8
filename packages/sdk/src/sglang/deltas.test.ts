import { describe, expect, it } from "vitest";
import { readSseData } from "../core/sse.js";
import { DeltaTracker } from "./deltas.js";
import type { SglangGenerateOutput } from "./types.js";

const event = (text: string, ids: number[] | undefined, completion: number): SglangGenerateOutput => ({
  text,
  ...(ids ? { output_ids: ids } : {}),
  meta_info: { id: "r", finish_reason: null, prompt_tokens: 1, completion_tokens: completion, cached_tokens: 0 },
});

describe("DeltaTracker", () => {
  it("tells incremental from cumulative by output_ids even when the text repeats", () => {
    // Incremental "ha","ha": the text alone would look cumulative (an empty delta).
    const incremental = new DeltaTracker();
    expect(incremental.next(event("ha", [1, 2], 2)).text).toBe("ha");
    expect(incremental.next(event("ha", [1, 2], 4))).toEqual({ text: "ha", tokenIds: [1, 2] });
    expect(incremental.detectedMode).toBe("incremental");
    expect(incremental.fullText).toBe("haha");

    const cumulative = new DeltaTracker();
    cumulative.next(event("ha", [1, 2], 2));
    expect(cumulative.next(event("haha", [1, 2, 1, 2], 4))).toEqual({ text: "ha", tokenIds: [1, 2] });
    expect(cumulative.detectedMode).toBe("cumulative");
  });

  it("falls back to the text prefix without output_ids, and obeys a declared mode", () => {
    const guessed = new DeltaTracker();
    guessed.next(event("ab", undefined, 2));
    expect(guessed.next(event("cd", undefined, 4)).text).toBe("cd");
    expect(guessed.detectedMode).toBe("incremental");

    const declared = new DeltaTracker("incremental");
    declared.next(event("ha", undefined, 2));
    expect(declared.next(event("ha", undefined, 4)).text).toBe("ha");
  });
});

describe("readSseData", () => {
  it("splits events on blank lines, joins multi-line data, skips comments, accepts CRLF", async () => {
    async function* chunks() {
      const bytes = new TextEncoder().encode(': keep-alive\n\ndata: {"a":1}\r\n\r\ndata: x\ndata: y\n\nevent: e\ndata: [DONE]');
      for (let i = 0; i < bytes.length; i += 3) yield bytes.subarray(i, i + 3);
    }
    const out: string[] = [];
    for await (const data of readSseData(chunks())) out.push(data);
    expect(out).toEqual(['{"a":1}', "x\ny", "[DONE]"]);
  });
});
