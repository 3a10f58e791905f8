// The conversation a session keeps for the background model's context package
// and for a rollover's carried prompt: every line with its input time, bounded
// in characters so an always-on session does not grow without end. Both
// readers keep the start and the newest lines and drop the middle, so the log
// does the same: past its bound it forgets the oldest lines after the start,
// and one system line says how much is gone.
import type { ConversationEntry } from "./ports.js";

/**
 * Characters kept by default: eight times what a background context package
 * holds by default (24,000), so the log never decides what a package shows.
 */
export const CONVERSATION_MAX_CHARS = 192_000;

/** Share of the bound kept for the start of the conversation. */
const HEAD_SHARE = 0.25;

/** Characters a line costs beyond its text (time and role), for the bound. */
const LINE_OVERHEAD = 16;

const size = (entry: ConversationEntry) => entry.text.length + LINE_OVERHEAD;

export class ConversationLog {
  private readonly entries: ConversationEntry[] = [];
  private chars = 0;
  /** Index of the omission line once lines were dropped; the start is before it. */
  private markerAt = -1;
  private omitted = 0;
  private omittedChars = 0;

  constructor(private readonly maxChars = CONVERSATION_MAX_CHARS) {}

  get length(): number {
    return this.entries.length;
  }

  push(entry: ConversationEntry): void {
    this.entries.push(entry);
    this.chars += size(entry);
    // Trimmed past a tenth over the bound, so a trim is not paid on every line.
    if (this.chars > this.maxChars * 1.1) this.trim();
  }

  /** The lines, oldest first, as kept (not a copy). */
  get lines(): readonly ConversationEntry[] {
    return this.entries;
  }

  /** A copy of the lines, oldest first. */
  snapshot(): ConversationEntry[] {
    return [...this.entries];
  }

  /** The lines that pass `keep`, oldest first. */
  filter(keep: (entry: ConversationEntry) => boolean): ConversationEntry[] {
    return this.entries.filter(keep);
  }

  private trim(): void {
    if (this.markerAt < 0) {
      let head = 0;
      let headChars = 0;
      while (head < this.entries.length - 1 && headChars + size(this.entries[head]!) <= this.maxChars * HEAD_SHARE) headChars += size(this.entries[head++]!);
      this.markerAt = head;
      this.entries.splice(head, 0, { role: "system", text: "", startMs: this.entries[head]!.startMs });
      this.chars += LINE_OVERHEAD;
    }
    let drop = 0;
    const first = this.markerAt + 1;
    // The newest line always stays.
    while (this.chars > this.maxChars && first + drop < this.entries.length - 1) {
      const entry = this.entries[first + drop]!;
      this.chars -= size(entry);
      this.omittedChars += entry.text.length;
      drop++;
    }
    if (drop === 0) return;
    this.omitted += drop;
    this.entries.splice(first, drop);
    const marker = this.entries[this.markerAt]!;
    this.chars -= size(marker);
    marker.text = `[${this.omitted} earlier lines (${this.omittedChars} characters) are no longer kept]`;
    this.chars += size(marker);
  }
}
