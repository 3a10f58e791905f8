// Session bookkeeping and output planning of the fake SGLang server, after
// srt/session/session_controller.py (0.5.23) and the detokenizer's stop-string
// handling. Tokens: one per code point (id = code point + 16), BOS = 1, EOS = 2.
import type { InjectedAbort } from "./sglang-server.js";

export const BOS_ID = 1;
export const EOS_ID = 2;
const FIRST_TEXT_ID = 16;

export interface FakeSession {
  id: string;
  streaming: boolean;
  timeoutS: number | undefined;
  lastActiveMs: number;
  /** The committed sequence: every finished turn's input and output. */
  tokens: number[];
  lastRid: string | undefined;
  inFlight: boolean;
  closeOnFinish: boolean;
}

export interface Turn {
  /** The whole prompt of this request (history, then the new input). */
  promptIds: number[];
  /** The new input alone. */
  newIds: number[];
  abort?: InjectedAbort;
}

export interface PlannedEvent {
  text: string;
  output_ids: number[];
  deltaText: string;
  deltaIds: number[];
  meta_info: Record<string, unknown>;
}

export interface TurnPlan {
  events: PlannedEvent[];
  outputIds: number[];
}

export function tokenize(text: string, withBos: boolean): number[] {
  const ids = Array.from(text, (ch) => ch.codePointAt(0)! + FIRST_TEXT_ID);
  return withBos ? [BOS_ID, ...ids] : ids;
}

/** Special tokens are skipped, as with SGLang's default skip_special_tokens. */
export function detokenize(ids: readonly number[]): string {
  return ids.filter((id) => id >= FIRST_TEXT_ID).map((id) => String.fromCodePoint(id - FIRST_TEXT_ID)).join("");
}

/** Closes sessions idle longer than their timeout, unless a turn is in flight (SGLang defers those). */
export function reapSessions(sessions: Map<string, FakeSession>): void {
  const now = performance.now();
  for (const [id, session] of sessions) {
    if (session.timeoutS !== undefined && !session.inFlight && now - session.lastActiveMs > session.timeoutS * 1000) {
      sessions.delete(id);
    }
  }
}

/** Builds a session request's prompt the way Session.create_req does, or the abort it ends with. */
export function sessionTurnInput(
  session: FakeSession | undefined,
  params: { rid?: string; offset?: number; replace?: boolean; drop_previous_output?: boolean },
  input: { id: string; inputIds: number[] | undefined; inputText: string | undefined },
): Turn {
  const fresh = input.inputIds ?? tokenize(input.inputText ?? "", true);
  // An aborted request keeps one token ([0]) as its prompt.
  const aborted = (message: string): Turn => ({ promptIds: [0], newIds: [], abort: { message } });
  if (!session) return aborted(`Invalid request: session id ${input.id} does not exist`);
  if (session.closeOnFinish) return aborted(`Invalid request: close was requested for session ${input.id}`);
  if (session.streaming) {
    if (session.inFlight) return aborted("Streaming session already has an active request.");
    if (params.replace) return aborted("Streaming sessions do not support replace.");
    if (params.drop_previous_output) return aborted("Streaming sessions do not support drop_previous_output.");
    if (params.offset) return aborted("Streaming sessions do not support offset.");
  } else if (params.rid !== undefined && params.rid !== session.lastRid) {
    return aborted("Invalid request session id");
  }
  const newIds = session.tokens.length > 0 && fresh[0] === BOS_ID ? fresh.slice(1) : fresh;
  const history = !session.streaming && params.offset ? session.tokens.slice(0, params.offset) : session.tokens;
  const promptIds = [...history, ...newIds];
  if (promptIds.length === 0) return aborted("A session request must contain input tokens after restoring history.");
  return { promptIds, newIds };
}

/** Every stream event of one request: one per generated token, the last carrying the finish reason. */
export function planTurn(
  turn: Turn,
  sampling: Record<string, unknown>,
  respond: (input: { inputText: string; historyText: string }) => string,
  rid: string,
): TurnPlan {
  const meta = (completion: number, finish: unknown, cached: number): Record<string, unknown> => ({
    id: rid,
    finish_reason: finish,
    prompt_tokens: turn.promptIds.length,
    weight_version: "default",
    num_retractions: 0,
    reasoning_tokens: 0,
    completion_tokens: completion,
    cached_tokens: cached,
  });
  if (turn.abort) {
    const finish = {
      type: "abort",
      message: turn.abort.message,
      status_code: turn.abort.statusCode === undefined ? 400 : turn.abort.statusCode,
      err_type: turn.abort.errType === undefined ? "BadRequestError" : turn.abort.errType,
    };
    return { events: [{ text: "", output_ids: [], deltaText: "", deltaIds: [], meta_info: meta(0, finish, 0) }], outputIds: [] };
  }
  const historyLength = turn.promptIds.length - turn.newIds.length;
  const reply = respond({ inputText: detokenize(turn.newIds), historyText: detokenize(turn.promptIds.slice(0, historyLength)) });
  const maxNew = typeof sampling.max_new_tokens === "number" ? sampling.max_new_tokens : 128;
  const stops = sampling.stop === undefined ? [] : Array.isArray(sampling.stop) ? (sampling.stop as string[]) : [sampling.stop as string];
  const candidates = [...tokenize(reply, false), ...(sampling.ignore_eos === true ? [] : [EOS_ID])];

  const events: PlannedEvent[] = [];
  const out: number[] = [];
  let sent = "";
  if (maxNew === 0) {
    events.push({ text: "", output_ids: [], deltaText: "", deltaIds: [], meta_info: meta(0, { type: "length", length: 0 }, historyLength) });
    return { events, outputIds: out };
  }
  let sentIds = 0;
  for (const id of candidates) {
    out.push(id);
    const decoded = detokenize(out);
    const matched = stops.find((stop) => decoded.includes(stop));
    let finish: unknown = null;
    if (matched !== undefined) finish = { type: "stop", matched };
    else if (id === EOS_ID) finish = { type: "stop", matched: EOS_ID };
    else if (out.length >= maxNew) finish = { type: "length", length: maxNew };
    // Like SGLang's output streamer: hold tokens back while the text may end
    // in the start of a stop string; on finish the detokenizer trims the match.
    if (finish === null && stops.some((stop) => endsWithPrefixOf(decoded, stop))) continue;
    const full = matched !== undefined ? decoded.slice(0, decoded.indexOf(matched)) : decoded;
    const delta = full.slice(Math.min(sent.length, full.length));
    sent += delta;
    events.push({ text: sent, output_ids: [...out], deltaText: delta, deltaIds: out.slice(sentIds), meta_info: meta(out.length, finish, historyLength) });
    sentIds = out.length;
    if (finish !== null) break;
  }
  if (events.length === 0 || events[events.length - 1]!.meta_info.finish_reason === null) {
    // ignore_eos with a reply shorter than the budget: the budget ends it.
    const last = events[events.length - 1];
    events.push({
      text: sent, output_ids: [...out], deltaText: "", deltaIds: out.slice(sentIds),
      meta_info: { ...(last?.meta_info ?? meta(out.length, null, historyLength)), finish_reason: { type: "length", length: maxNew } },
    });
  }
  return { events, outputIds: out };
}

function endsWithPrefixOf(text: string, stop: string): boolean {
  for (let i = Math.min(text.length, stop.length); i >= 1; i -= 1) {
    if (text.endsWith(stop.slice(0, i))) return true;
  }
  return false;
}
