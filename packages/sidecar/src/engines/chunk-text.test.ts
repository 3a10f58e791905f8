import { ContextSource } from "@microturn/protocol";
import { describe, expect, it } from "vitest";
import { renderChunkText, renderTimeMarker } from "./chunk-text.js";

describe("renderChunkText", () => {
  it("writes the time marker, the context items in order, then the text", () => {
    const text = renderChunkText({
      seq: 62,
      startMs: 12_400,
      durationMs: 200,
      text: "and then?",
      context: [
        { source: ContextSource.CONTEXT_SOURCE_TOOL, text: '{"temp":21}', refId: 'call "7"' },
        { source: ContextSource.CONTEXT_SOURCE_SYSTEM, text: "be brief", refId: "" },
      ],
    });
    expect(text).toBe(`<t=12.4s><tool ref="call '7'">{"temp":21}</tool><system>be brief</system>and then?`);
  });

  it("renders a chunk without text as its time marker alone", () => {
    expect(renderChunkText({ seq: 0, startMs: 0, durationMs: 200 })).toBe("<t=0.0s>");
    expect(renderTimeMarker(61_250)).toBe("<t=61.3s>");
  });
});
