// How a micro-turn's input reads as text, for engines that take text: the
// time marker, then the context delivered at this boundary, then the user's
// text. One rendering for every text engine, so a model hears the same format
// whichever engine serves it.
import { ContextSource } from "@microturn/protocol";
import type { EngineChunk } from "./engine.js";

const SOURCE_TAGS: Partial<Record<ContextSource, string>> = {
  [ContextSource.CONTEXT_SOURCE_SYSTEM]: "system",
  [ContextSource.CONTEXT_SOURCE_BACKGROUND]: "background",
  [ContextSource.CONTEXT_SOURCE_TOOL]: "tool",
};

/** `<t=12.4s>` for a chunk starting at 12 400 ms: input time in seconds, one decimal. */
export function renderTimeMarker(startMs: number): string {
  return `<t=${(startMs / 1000).toFixed(1)}s>`;
}

/**
 * `<t=SS.Ss>`, then each context item as `<background ref="task-1">…</background>`
 * (`system`, `background`, `tool`; no ref attribute when the id is empty),
 * then the chunk's text as is. Audio and video are not rendered here.
 */
export function renderChunkText(chunk: EngineChunk): string {
  let out = renderTimeMarker(chunk.startMs);
  for (const item of chunk.context ?? []) {
    const tag = SOURCE_TAGS[item.source] ?? "context";
    const ref = item.refId ? ` ref="${item.refId.replaceAll('"', "'")}"` : "";
    out += `<${tag}${ref}>${item.text}</${tag}>`;
  }
  return out + (chunk.text ?? "");
}
