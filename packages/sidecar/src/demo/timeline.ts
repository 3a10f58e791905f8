// The demo's live terminal timeline: one line per event a person would want to
// follow, stamped with session input time, then a summary.
import { TaskStatus, type BackgroundUpdate, type OutputChunk, type SessionError, type ToolCall } from "@microturn/protocol";

const color = (code: number) => (text: string) => (process.env.NO_COLOR ? text : `\u001b[${code}m${text}\u001b[0m`);
const dim = color(2);
const cyan = color(36);
const green = color(32);
const yellow = color(33);
const red = color(31);
const magenta = color(35);

/** Model output can be anything (random weights): show it printable and short. */
function printable(text: string, max = 60): string {
  const clean = [...text].map((ch) => (ch !== "\uFFFD" && /[\p{L}\p{N}\p{P}\p{Zs}\p{S}]/u.test(ch) ? ch : "·")).join("");
  return clean.length > max ? `${clean.slice(0, max)}…` : clean;
}

const stamp = (ms: number) => `[${(ms / 1000).toFixed(1).padStart(5)} s]`;

export interface DemoSummary {
  chunks: number;
  outputs: number;
  p50: number;
  p95: number;
  realTimeFactor: number;
  appendP50: number;
  positionTokens: number;
  backgroundDone: number;
  toolCalls: number;
  errors: number;
  randomWeights: boolean;
  /** Where the session was recorded; "" when it was not. */
  recordingPath: string;
}

export class Timeline {
  constructor(private readonly out: NodeJS.WritableStream) {}

  private line(text: string): void {
    this.out.write(`${text}\n`);
  }

  banner(text: string): void {
    this.line(cyan(`== ${text}`));
  }

  note(text: string): void {
    this.line(dim(`   ${text}`));
  }

  input(startMs: number, text: string): void {
    this.line(`${stamp(startMs)} ${cyan("in ")} ${text}`);
  }

  output(o: OutputChunk): void {
    const timing = dim(`(seq ${o.seq}, ${o.latencyMs.toFixed(1)} ms)`);
    if (o.silent) {
      if (o.seq % 10 === 0) this.line(`${stamp(o.seq * 200)} ${dim("out  … silent")} ${timing}`);
      return;
    }
    const plays = o.startMs > o.seq * 200 + 400 ? dim(` plays at ${(o.startMs / 1000).toFixed(1)} s`) : "";
    this.line(`${stamp(o.seq * 200)} ${green("out")} "${printable(o.text)}"${plays} ${timing}`);
  }

  background(b: BackgroundUpdate): void {
    const status = TaskStatus[b.status]?.replace("TASK_STATUS_", "").toLowerCase() ?? String(b.status);
    if (b.deliveredAtSeq > 0) {
      this.line(`${stamp(b.deliveredAtSeq * 200)} ${magenta("bg ")} task ${b.taskId} woven into the conversation at seq ${b.deliveredAtSeq}`);
      return;
    }
    const content = b.content ? ` "${printable(b.content, 50)}"` : "";
    const error = b.errorMessage ? ` ${red(b.errorMessage)}` : "";
    this.line(`${" ".repeat(9)} ${magenta("bg ")} task ${b.taskId} ${status}${content}${error}`);
  }

  toolCall(t: ToolCall): void {
    this.line(`${stamp(t.seq * 200)} ${yellow("tool")} ${t.name}(${printable(t.argumentsJson)})`);
  }

  error(e: SessionError): void {
    this.line(`${" ".repeat(9)} ${red("err")} ${e.message}`);
  }

  summary(s: DemoSummary): void {
    this.line("");
    this.banner("summary");
    this.line(`   micro-turns        ${s.outputs}/${s.chunks} answered`);
    this.line(`   micro-turn latency p50 ${s.p50.toFixed(1)} ms, p95 ${s.p95.toFixed(1)} ms (chunk arrival → output)`);
    this.line(`   engine append      p50 ${s.appendP50.toFixed(2)} ms`);
    this.line(`   real-time factor   ${s.realTimeFactor.toFixed(3)} (compute / input time; < 1 keeps up)`);
    this.line(`   sequence length    ${s.positionTokens} tokens, never re-prefilled`);
    this.line(`   background tasks   ${s.backgroundDone} finished`);
    this.line(`   tool calls         ${s.toolCalls} (answered by the app, woven in at the next micro-turn)`);
    this.line(`   errors             ${s.errors}`);
    if (s.recordingPath) this.line(`   recording          ${s.recordingPath} (again on any engine: npm run microturn -- replay <file> [flags])`);
    if (s.randomWeights) this.line(dim("   (random-weight model: the words are noise; the timing and the plumbing are real)"));
  }
}
