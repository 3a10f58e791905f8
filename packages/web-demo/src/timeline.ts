// The page's live view of a session: one timeline row per micro-turn (what
// went in, what came out, how long it took), rows for errors, background
// updates and session changes, running counts, and the transcript.
const MAX_ROWS = 300;
// Background results can be long; the row shows their start.
const MAX_MESSAGE_CHARS = 160;

export interface TimelineCounts {
  inputs: number;
  audioMs: number;
  outputs: number;
  spoken: number;
  errors: number;
  background: number;
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, className: string, text = ""): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.className = className;
  node.textContent = text;
  return node;
}

function clock(ms: number): string {
  const s = ms / 1000;
  return `${Math.floor(s / 60)}:${(s % 60).toFixed(1).padStart(4, "0")}`;
}

export class Timeline {
  readonly counts: TimelineCounts = { inputs: 0, audioMs: 0, outputs: 0, spoken: 0, errors: 0, background: 0 };
  private readonly turns = new Map<number, HTMLLIElement>();
  private modelLine: HTMLParagraphElement | undefined;

  constructor(
    private readonly list: HTMLOListElement,
    private readonly countsView: HTMLElement,
    private readonly transcript: HTMLElement,
  ) {}

  input(seq: number, startMs: number, audioMs: number, text: string): void {
    this.counts.inputs++;
    this.counts.audioMs += audioMs;
    const row = el("li", "turn");
    row.dataset.seq = String(seq);
    const parts = [audioMs > 0 ? `audio ${Math.round(audioMs)} ms` : "", text ? `“${text}”` : ""].filter(Boolean);
    row.append(el("span", "time", clock(startMs)), el("span", "seq", `#${seq}`), el("span", "in", parts.join(" ") || "·"), el("span", "out pending", "…"), el("span", "lat", ""));
    this.turns.set(seq, row);
    this.add(row);
    if (text) this.say("you", text);
  }

  output(seq: number, text: string, silent: boolean, audioMs: number, latencyMs: number): void {
    this.counts.outputs++;
    if (!silent) this.counts.spoken++;
    const row = this.turns.get(seq);
    const shown = silent ? "(silent)" : [text ? text : "", audioMs > 0 ? `[audio ${Math.round(audioMs)} ms]` : ""].filter(Boolean).join(" ");
    if (row) {
      const out = row.querySelector<HTMLElement>(".out")!;
      out.textContent = shown;
      out.className = silent ? "out silent" : "out spoken";
      row.querySelector<HTMLElement>(".lat")!.textContent = `${Math.round(latencyMs)} ms`;
    } else {
      this.event("output", `#${seq} ${shown}`);
    }
    if (!silent && text) this.modelSays(text);
    this.render();
  }

  error(message: string, fatal = true): void {
    this.counts.errors++;
    this.event(fatal ? "error" : "warning", message);
  }

  background(taskId: string, status: string, text: string): void {
    this.counts.background++;
    const ended = status === "failed" || status === "timed out" || status === "cancelled";
    this.event("background", `task ${taskId} ${status}${text ? `: ${text}` : ""}`, ended ? "background ended" : "background");
  }

  event(kind: string, message: string, className = kind): void {
    const row = el("li", `event ${className}`);
    const shown = message.length > MAX_MESSAGE_CHARS ? `${message.slice(0, MAX_MESSAGE_CHARS)}…` : message;
    row.append(el("span", "time", new Date().toLocaleTimeString("en-GB")), el("span", "kind", kind), el("span", "msg", shown));
    this.add(row);
  }

  private add(row: HTMLLIElement): void {
    const atBottom = this.list.scrollTop + this.list.clientHeight >= this.list.scrollHeight - 8;
    this.list.append(row);
    while (this.list.children.length > MAX_ROWS) {
      const first = this.list.firstElementChild as HTMLLIElement;
      if (first.dataset.seq) this.turns.delete(Number(first.dataset.seq));
      first.remove();
    }
    if (atBottom) this.list.scrollTop = this.list.scrollHeight;
    this.render();
  }

  private say(who: "you" | "model", text: string): void {
    const line = el("p", who);
    line.append(el("b", "", `${who}: `), document.createTextNode(text));
    this.transcript.append(line);
    this.modelLine = who === "model" ? line : undefined;
    this.transcript.scrollTop = this.transcript.scrollHeight;
  }

  private modelSays(delta: string): void {
    if (this.modelLine) {
      this.modelLine.append(document.createTextNode(delta));
      this.transcript.scrollTop = this.transcript.scrollHeight;
    } else this.say("model", delta);
  }

  private render(): void {
    const c = this.counts;
    this.countsView.textContent = `${c.inputs} chunks sent (${(c.audioMs / 1000).toFixed(1)} s audio) · ${c.outputs} outputs (${c.spoken} with content) · ${c.errors} errors or warnings · ${c.background} background updates`;
  }
}
