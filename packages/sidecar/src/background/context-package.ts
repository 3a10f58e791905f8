// Builds the context package handed to the background model: who it is, the
// whole conversation with input times, then the task. Bounded in characters so
// a long session cannot overflow the background model's context.
import { formatEntry, formatSeconds, type ConversationEntry } from "../session/ports.js";
import type { ChatMessage } from "./client.js";

// One definition of a conversation line and its format: the session's port owns them.
export { formatEntry, type ConversationEntry };

export interface ContextPackageOptions {
  /** Upper bound on the characters of all messages together. Default 24000. */
  maxChars?: number;
  /** Share of the transcript budget kept for the start of the conversation. Default 0.25. */
  headShare?: number;
  /** Extra instructions appended to the system message (the app's own). */
  instructions?: string;
  /** Names of server-side tools the background model may call, mentioned in the system message. */
  toolNames?: string[];
}

export const DEFAULT_CONTEXT_MAX_CHARS = 24_000;

const SYSTEM_PROMPT = [
  "You are the background model of a real-time interaction model.",
  "The interaction model talks with a user in 200 ms micro-turns and cannot think for long while it speaks,",
  "so it hands longer tasks to you. Below is the conversation so far: each line starts with the input time",
  "in seconds since the session began and who spoke (user, assistant = the interaction model, tool = a tool",
  "call or its result, background = an earlier background result, system = a session event).",
  "Work on the task at the end. Your answer is streamed back and woven into the conversation by the",
  "interaction model, which will say it in its own words: answer the task directly, concisely, in plain text,",
  "without greetings or remarks about these instructions.",
].join(" ");

function clip(text: string, maxChars: number): string {
  if (text.length <= maxChars) return text;
  const marker = " [...truncated]";
  return text.slice(0, Math.max(0, maxChars - marker.length)) + marker;
}

/**
 * Lines of the transcript that fit `budget` characters (newline-joined). Keeps
 * the start (up to `headShare` of the budget) and as much of the recent end as
 * fits; the middle goes first and a marker says how much was left out.
 */
export function fitTranscript(lines: string[], budget: number, headShare: number): { lines: string[]; omitted: number } {
  const total = lines.reduce((n, l) => n + l.length + 1, 0);
  if (total <= budget) return { lines, omitted: 0 };
  const markerReserve = 120;
  const usable = Math.max(0, budget - markerReserve);
  const head: string[] = [];
  let used = 0;
  const headBudget = Math.floor(usable * headShare);
  for (const line of lines) {
    if (used + line.length + 1 > headBudget) break;
    head.push(line);
    used += line.length + 1;
  }
  const tail: string[] = [];
  for (let i = lines.length - 1; i >= head.length; i--) {
    const line = lines[i] as string;
    if (used + line.length + 1 > usable) {
      // The newest entry always shows, clipped, so the model sees what was just said.
      if (tail.length === 0) {
        const room = usable - used - 1;
        if (room > 40) {
          tail.push(clip(line, room));
          used += room + 1;
        }
      }
      break;
    }
    tail.push(line);
    used += line.length + 1;
  }
  tail.reverse();
  const omitted = lines.length - head.length - tail.length;
  const omittedChars = total - used;
  const marker = `[... ${omitted} conversation entries (${omittedChars} characters) omitted here to fit the context budget ...]`;
  return { lines: [...head, marker, ...tail], omitted };
}

/** Chat messages (OpenAI shape) for one background task. */
export function buildContextPackage(
  conversation: readonly ConversationEntry[],
  task: string,
  options: ContextPackageOptions = {},
): ChatMessage[] {
  const maxChars = options.maxChars ?? DEFAULT_CONTEXT_MAX_CHARS;
  const headShare = Math.min(0.9, Math.max(0, options.headShare ?? 0.25));
  let system = SYSTEM_PROMPT;
  if (options.toolNames !== undefined && options.toolNames.length > 0) {
    system += ` You may call these tools when they help: ${options.toolNames.join(", ")}.`;
  }
  if (options.instructions !== undefined && options.instructions.trim() !== "") {
    system += `\n\nInstructions from the application:\n${options.instructions.trim()}`;
  }
  // The task may not crowd out the whole conversation: at most half the budget.
  const taskText = clip(task.trim(), Math.floor(maxChars / 2));
  const lastTime = conversation.length > 0 ? (conversation[conversation.length - 1] as ConversationEntry).startMs : 0;
  const taskBlock = `Task (asked at ${formatSeconds(lastTime)}):\n${taskText}`;
  const frame = "Conversation so far:\n";
  const transcriptBudget = Math.max(0, maxChars - system.length - taskBlock.length - frame.length - 2);
  const { lines } = fitTranscript(conversation.map(formatEntry), transcriptBudget, headShare);
  const transcript = lines.length > 0 ? lines.join("\n") : "(nothing has been said yet)";
  return [
    { role: "system", content: system },
    { role: "user", content: `${frame}${transcript}\n\n${taskBlock}` },
  ];
}
