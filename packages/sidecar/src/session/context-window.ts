// What a session does when its sequence nears the engine's capacity: it starts
// a fresh engine session whose system prompt carries the recent conversation,
// once, instead of failing every later micro-turn with TOO_LARGE. The old
// sequence is never re-prefilled chunk by chunk; a rollover costs one prefill
// of the carried text (see docs/architecture.md, "Long sessions").
import type { EngineSession } from "../engines/engine.js";
import { formatEntry, type ConversationEntry } from "./ports.js";

/** Share of the capacity the carried conversation may take (beyond the system prompt). */
export const CARRY_SHARE = 0.25;
/**
 * A rollover is worth its prefill only when the sequence grew by this share of
 * the capacity since it began; otherwise the fixed part (the system prompt) is
 * what leaves no room, a fresh session would be as full, and the engine's
 * TOO_LARGE is the honest answer.
 */
export const ROLLOVER_MIN_GROWTH = 0.25;

/**
 * True when the next micro-turn might not fit: the position plus the tokens a
 * turn needs (its input as large as the largest seen so far, twice over, and
 * its output budget) passes the capacity.
 */
export function needsRollover(positionTokens: number, capacityTokens: number, largestInputTokens: number, maxOutputTokens: number): boolean {
  if (!Number.isFinite(capacityTokens) || capacityTokens <= 0) return false;
  return positionTokens + 2 * largestInputTokens + maxOutputTokens + 16 > capacityTokens;
}

/** Whether starting afresh would free room: the sequence grew enough since it began. */
export function rolloverHelps(positionTokens: number, basePositionTokens: number, capacityTokens: number): boolean {
  return capacityTokens > 0 && positionTokens - basePositionTokens >= capacityTokens * ROLLOVER_MIN_GROWTH;
}

/** A conversation line on one line: the carried prompt spends no tokens on layout. */
function carriedLine(entry: ConversationEntry): string {
  return formatEntry({ ...entry, text: entry.text.replace(/\s+/g, " ").trim() });
}

/**
 * The system prompt of the session after a rollover: the original prompt, then
 * the newest conversation lines that fit in `budgetChars`, oldest first.
 */
export function carryOverPrompt(systemPrompt: string, conversation: readonly ConversationEntry[], budgetChars: number): { prompt: string; lines: number } {
  const lines: string[] = [];
  let used = 0;
  for (let i = conversation.length - 1; i >= 0; i--) {
    const line = carriedLine(conversation[i]!);
    if (used + line.length + 1 > budgetChars) break;
    lines.push(line);
    used += line.length + 1;
  }
  if (lines.length === 0) return { prompt: systemPrompt, lines: 0 };
  const omitted = conversation.length - lines.length;
  const header = omitted > 0 ? `Conversation so far (the ${omitted} earliest lines are left out):` : "Conversation so far:";
  return { prompt: [systemPrompt, [header, ...lines.reverse()].join("\n")].filter(Boolean).join("\n\n"), lines: lines.length };
}

/**
 * Opens the session that follows `old`, carrying the newest conversation. The
 * carried text starts at ~4 characters a token and is halved until it takes at
 * most CARRY_SHARE of the capacity beyond the system prompt's `promptTokens`,
 * whatever the engine's tokenizer makes of it; the last try carries none.
 */
export async function openCarryingSession(
  old: EngineSession,
  systemPrompt: string,
  promptTokens: number,
  conversation: readonly ConversationEntry[],
  open: (systemPrompt: string) => Promise<EngineSession>,
): Promise<{ fresh: EngineSession; carriedLines: number }> {
  const capacity = old.stats().capacityTokens;
  let budgetChars = Math.floor(capacity * CARRY_SHARE * 4);
  for (let attempt = 0; ; attempt++) {
    const last = attempt >= 5;
    const carried = carryOverPrompt(systemPrompt, conversation, last ? 0 : budgetChars);
    const fresh = await open(carried.prompt);
    if (last || fresh.positionTokens <= promptTokens + capacity * CARRY_SHARE) return { fresh, carriedLines: carried.lines };
    await fresh.close().catch(() => undefined);
    budgetChars = Math.floor(budgetChars / 2);
  }
}
