// Turns a micro-turn's output tokens into text deltas while keeping one
// invariant: the text emitted is exactly the text of the output tokens kept
// in the sequence. Tokens whose text might start a stop string (or ends in a
// partial UTF-8 character) are held back until that is decided; on a stop
// match the tokens from the match on are dropped from the sequence.
import type { Token } from "node-llama-cpp";

export type Detokenize = (tokens: readonly Token[]) => string;

export class OutputText {
  readonly tokens: Token[] = [];
  /** Output tokens whose text has been emitted. */
  emittedTokens = 0;
  private emittedText = "";

  constructor(
    private readonly detokenize: Detokenize,
    private readonly stops: readonly string[],
  ) {}

  push(token: Token): void {
    this.tokens.push(token);
  }

  /**
   * After a token was added: the text to emit now (possibly empty), and how
   * many output tokens to keep if a stop string matched.
   */
  advance(): { text: string; stopAt?: number } {
    const full = this.detokenize(this.tokens);
    const match = this.firstStop(full);
    if (match !== undefined) {
      const keep = this.tokensWithin(match);
      return { text: this.emitUpTo(keep), stopAt: keep };
    }
    const safe = full.length - this.heldSuffix(full);
    return { text: this.emitUpTo(this.tokensWithin(safe)) };
  }

  /** Emits whatever is held back; the turn ended without a stop match. */
  flush(): string {
    return this.emitUpTo(this.tokens.length);
  }

  private emitUpTo(count: number): string {
    if (count <= this.emittedTokens) return "";
    const text = this.detokenize(this.tokens.slice(0, count));
    const delta = text.slice(this.emittedText.length);
    this.emittedText = text;
    this.emittedTokens = count;
    return delta;
  }

  /** Largest token count whose text fits in the first `chars` characters. */
  private tokensWithin(chars: number): number {
    let count = this.emittedTokens;
    while (count < this.tokens.length && this.detokenize(this.tokens.slice(0, count + 1)).length <= chars) count++;
    return count;
  }

  private firstStop(text: string): number | undefined {
    let first: number | undefined;
    for (const stop of this.stops) {
      if (!stop) continue;
      const at = text.indexOf(stop, Math.max(0, this.emittedText.length - stop.length));
      if (at >= 0 && (first === undefined || at < first)) first = at;
    }
    return first;
  }

  /** Length of the tail that could still become a stop string, or is a partial character. */
  private heldSuffix(text: string): number {
    let held = text.endsWith("\uFFFD") ? 1 : 0;
    for (const stop of this.stops) {
      for (let n = Math.min(stop.length - 1, text.length); n > held; n--) {
        if (text.endsWith(stop.slice(0, n))) {
          held = n;
          break;
        }
      }
    }
    return held;
  }
}
