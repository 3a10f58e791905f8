// Turns SGLang stream events into deltas (only the new text and token ids).
// SGLang sends cumulative text and output_ids by default and deltas when the
// server runs with --incremental-streaming-output; the event itself does not
// say which. `meta_info.completion_tokens` is cumulative in both modes, so
// once any output has arrived, the length of `output_ids` tells them apart.
// Without output_ids (a proxy that strips them) the text must extend the text
// so far to count as cumulative.
import type { SglangGenerateOutput } from "./types.js";

export type StreamTextMode = "cumulative" | "incremental";

export class DeltaTracker {
  private mode: StreamTextMode | undefined;
  private text = "";
  private tokens = 0;
  private events = 0;

  constructor(mode?: StreamTextMode) {
    this.mode = mode;
  }

  /** The mode in force; undefined until two events with output told them apart. */
  get detectedMode(): StreamTextMode | undefined {
    return this.mode;
  }

  /** Full text received so far. */
  get fullText(): string {
    return this.text;
  }

  next(event: SglangGenerateOutput): { text: string; tokenIds: number[] | undefined } {
    const text = event.text ?? "";
    const ids = event.output_ids;
    if (this.mode === undefined && this.events > 0) this.mode = this.detect(text, ids, event.meta_info.completion_tokens);
    this.events += 1;
    if (this.mode === "incremental") {
      this.text += text;
      this.tokens += ids?.length ?? 0;
      return { text, tokenIds: ids };
    }
    // Cumulative, or the first event, where both modes carry the same payload.
    const newText = text.startsWith(this.text) ? text.slice(this.text.length) : text;
    const newIds = ids?.slice(Math.min(this.tokens, ids.length));
    this.text = text.startsWith(this.text) ? text : this.text + text;
    this.tokens = ids?.length ?? this.tokens;
    return { text: newText, tokenIds: newIds };
  }

  private detect(text: string, ids: number[] | undefined, completionTokens: number | undefined): StreamTextMode | undefined {
    if (ids !== undefined && typeof completionTokens === "number" && this.tokens > 0) {
      if (ids.length === completionTokens) return "cumulative";
      if (ids.length === completionTokens - this.tokens) return "incremental";
    }
    if (this.text !== "" && text !== "") return text.startsWith(this.text) ? "cumulative" : "incremental";
    return undefined;
  }
}
