// `microturn replay FILE`: feeds a recorded session to a sidecar on any engine.
// The loop runs on input time, so replay goes in lockstep (each chunk's answer
// before the next event) and the same engine gives the same outputs.
import { createReadStream, existsSync } from "node:fs";
import { readdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import * as grpc from "@grpc/grpc-js";
import { ClientEvent, ContextItem, errorCodeToJSON, InteractionClient, type OutputChunk, type ServerEvent, type SessionError } from "@microturn/protocol";
import { startSidecar, type SidecarOverrides } from "./app.js";
import type { SidecarConfig } from "./config.js";
import { createLogger } from "./logger.js";
import type { ContextScript } from "./session/context-deliveries.js";
import { RECORDING_FORMATS, recordingFileName, recordingPartOf, type RecordingFormat, type RecordingHeader } from "./session/session-recorder.js";
import { waitAtMost } from "./timers.js";

export class RecordingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RecordingError";
  }
}

export interface Recording {
  header: RecordingHeader;
  events: ClientEvent[];
  /**
   * What entered the model's context at each boundary, by input seq; absent
   * in a microturn-recording/1 file, which did not keep it.
   */
  context: Map<number, ContextItem[]> | undefined;
  /** What was wrong with the file without stopping the replay (a cut-off last line). */
  warnings: string[];
}

/** Reads a recording held in a string; see readRecordingFile for files. */
export function readRecording(text: string): Recording {
  const reader = new RecordingReader();
  text.split("\n").forEach((line, i) => reader.line(line, i + 1));
  return reader.finish();
}

/**
 * Reads a recording file line by line: a whole-file string stops at Node's
 * 512 MiB limit, while a session's recording grows with its length.
 */
export async function readRecordingFile(path: string): Promise<Recording> {
  const input = createReadStream(path, { encoding: "utf8" });
  const reader = new RecordingReader();
  let lineNumber = 0;
  try {
    for await (const line of createInterface({ input, crlfDelay: Infinity })) reader.line(line, ++lineNumber);
  } finally {
    input.destroy();
  }
  return reader.finish();
}

/**
 * Checks each line as it comes. A line that is not JSON is an error unless it
 * is the last: a sidecar killed while writing leaves a cut-off line there, and
 * everything before it still replays.
 */
class RecordingReader {
  private header: RecordingHeader | undefined;
  private readonly events: ClientEvent[] = [];
  private readonly context = new Map<number, ContextItem[]>();
  /** The number of a line that was not JSON: fine only if no other line follows. */
  private cutOff: number | undefined;

  line(text: string, lineNumber: number): void {
    if (text.trim() === "") return;
    if (this.cutOff !== undefined) throw new RecordingError(`recording line ${this.cutOff} is not JSON`);
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      this.cutOff = lineNumber;
      return;
    }
    if (this.header === undefined) this.header = parseHeader(value, lineNumber);
    else if (isObject(value) && "context" in value && this.header.format !== "microturn-recording/1") {
      const { seq, items } = parseContext(value, lineNumber);
      appendContext(this.context, seq, items);
    } else this.events.push(parseEvent(value, lineNumber));
  }

  finish(): Recording {
    if (this.header === undefined) {
      throw new RecordingError(this.cutOff === undefined ? "recording is empty" : `recording line ${this.cutOff} is not JSON (no complete header)`);
    }
    const warnings = this.cutOff === undefined ? [] : [`recording line ${this.cutOff} is not JSON and is the last line: taken as cut off (the sidecar stopped while writing it) and skipped`];
    const context = this.header.format === "microturn-recording/1" ? undefined : this.context;
    return { header: this.header, events: this.events, context, warnings };
  }
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value);

function quote(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
}

function parseHeader(value: unknown, line: number): RecordingHeader {
  if (!isObject(value)) throw new RecordingError(`recording line ${line}: expected the header object, got ${quote(value)}`);
  if (!RECORDING_FORMATS.includes(value.format as RecordingFormat)) {
    throw new RecordingError(`recording line ${line}: not a microturn recording (format: ${quote(value.format)}; this sidecar reads ${RECORDING_FORMATS.join(", ")})`);
  }
  if (typeof value.sessionId !== "string" || typeof value.startedAt !== "string") {
    throw new RecordingError(`recording line ${line}: the header needs sessionId and startedAt strings, got ${quote(value)}`);
  }
  if (value.part !== undefined && !(Number.isInteger(value.part) && (value.part as number) >= 2)) {
    throw new RecordingError(`recording line ${line}: the header's part must be an integer from 2, got ${quote(value.part)}`);
  }
  return { format: value.format as RecordingFormat, sessionId: value.sessionId, startedAt: value.startedAt, ...(value.part !== undefined ? { part: value.part as number } : {}) };
}

function parseContext(value: Record<string, unknown>, line: number): { seq: number; items: ContextItem[] } {
  const context = value.context;
  if (typeof value.tMs !== "number" || !isObject(context) || !Number.isInteger(context.seq) || (context.seq as number) < 0 || !Array.isArray(context.items)) {
    throw new RecordingError(`recording line ${line}: expected {"tMs": <number>, "context": {"seq": <input seq>, "items": [ … ]}}, got ${quote(value)}`);
  }
  const items = context.items.map((item, i) => {
    if (!isObject(item) || typeof item.text !== "string") throw new RecordingError(`recording line ${line}: context item ${i} is not a context item: ${quote(item)}`);
    return ContextItem.fromJSON(item);
  });
  return { seq: context.seq as number, items };
}

function parseEvent(value: unknown, line: number): ClientEvent {
  if (!isObject(value) || !isObject(value.event) || typeof value.tMs !== "number" || !Number.isFinite(value.tMs)) {
    throw new RecordingError(`recording line ${line}: expected {"tMs": <number>, "event": {…}}, got ${quote(value)}`);
  }
  let event: ClientEvent;
  try {
    event = ClientEvent.fromJSON(value.event);
  } catch (err) {
    throw new RecordingError(`recording line ${line}: not a client event (${(err as Error).message}): ${quote(value.event)}`);
  }
  if (!event.event) throw new RecordingError(`recording line ${line}: the event has no payload this sidecar knows: ${quote(value.event)}`);
  const bad = nonFiniteField(event.event.value, event.event.$case);
  if (bad) throw new RecordingError(`recording line ${line}: ${bad} is not a number`);
  return event;
}

/** The path of the first number fromJSON could not read (it makes NaN of "abc"), or "". */
function nonFiniteField(value: unknown, path: string): string {
  if (typeof value === "number") return Number.isFinite(value) ? "" : path;
  if (Array.isArray(value)) {
    for (const [i, item] of value.entries()) {
      const bad = nonFiniteField(item, `${path}[${i}]`);
      if (bad) return bad;
    }
    return "";
  }
  if (!isObject(value) || value instanceof Uint8Array) return "";
  if (typeof value.$case === "string") return nonFiniteField(value.value, `${path}.${value.$case}`);
  for (const [key, item] of Object.entries(value)) {
    const bad = nonFiniteField(item, `${path}.${key}`);
    if (bad) return bad;
  }
  return "";
}

/** How long replay waits for one input chunk's answer before it reports a timeout and goes on. */
const ANSWER_TIMEOUT_MS = 60_000;

export interface ReplayOptions {
  /** How long one input chunk may wait for its answer; default 60 s. */
  answerTimeoutMs?: number;
  /**
   * The recorded context (Recording.context): the model gets each boundary's
   * recorded background and tool results, whatever the replay's tools and
   * background model answer and however fast. Absent: the results as they
   * arrive in the replay (tools and tasks run again; their timing decides).
   */
  context?: ContextScript;
}

export interface ReplayResult {
  outputs: OutputChunk[];
  events: ServerEvent[];
  /** Input seqs that got no answer within the answer timeout (replay went on with the next event). */
  timedOut: number[];
  /** Recorded events never sent because the stream had ended. */
  unsent: number;
  /** How the stream ended; undefined when it did not end within 5 s of the last event. */
  status: { code: grpc.status; details: string } | undefined;
  /** Why the replay did not go through cleanly, one line each; empty when it did. */
  problems: string[];
}

/** Replays events against a fresh in-process sidecar; returns what it answered. */
export async function replayEvents(events: ClientEvent[], config: SidecarConfig, overrides: SidecarOverrides = {}, options: ReplayOptions = {}): Promise<ReplayResult> {
  const answerTimeoutMs = options.answerTimeoutMs ?? ANSWER_TIMEOUT_MS;
  // The in-process server is this replay's alone: no API key (its own client sends none), no HTTP, no recording,
  // no TLS (its client speaks plaintext), no Unix socket (a live sidecar's may be named) and no peers.
  const own: Partial<SidecarConfig> = { port: 0, httpPort: -1, recordDir: "", apiKey: "", tlsCert: "", tlsKey: "", tlsClientCa: "", socket: "" };
  const noPeers: Partial<SidecarConfig> = { peerKey: "", peerKeysAccepted: "", advertiseUrl: "", peerCa: "" };
  const sidecar = await startSidecar({ ...config, ...own, ...noPeers }, { logger: createLogger("warn"), ...overrides, ...(options.context ? { contextScript: options.context } : {}) });
  const client = new InteractionClient(sidecar.server.grpcAddress, grpc.credentials.createInsecure());
  const call = client.converse();
  const received: ServerEvent[] = [];
  let status: ReplayResult["status"];
  let streamEnded = false;
  let wake: (() => void) | undefined;
  const notify = () => wake?.();
  call.on("data", (e: ServerEvent) => {
    received.push(e);
    notify();
  });
  // The status comes last, after every message; "end" or "error" may come before it, and each ends the waiting.
  const stop = () => {
    streamEnded = true;
    notify();
  };
  call.on("end", stop);
  call.on("error", stop);
  const ended = new Promise<void>((resolve) =>
    call.on("status", (s: grpc.StatusObject) => {
      status = { code: s.code, details: s.details };
      streamEnded = true;
      notify();
      resolve();
    }),
  );

  /** Waits until `answered()`, the stream's end or `ms`; true when answered. */
  const waitFor = async (answered: () => boolean, ms: number): Promise<boolean> => {
    const deadline = Date.now() + ms;
    while (!answered() && !streamEnded && Date.now() < deadline) {
      await waitAtMost(new Promise<void>((resolve) => (wake = resolve)), deadline - Date.now());
    }
    return answered();
  };

  const timedOut: number[] = [];
  let sent = 0;
  try {
    for (const [index, recorded] of events.entries()) {
      if (streamEnded) break;
      const event = forReplay(recorded, index);
      const from = received.length;
      call.write(event);
      sent++;
      const e = event.event;
      if (e?.$case === "start" || e?.$case === "resume") {
        // Nothing goes ahead of the session's opening: a start refused with a fatal error ends the stream with nothing else sent.
        await waitFor(() => received.slice(from).some((r) => r.event?.$case === "started" || (r.event?.$case === "error" && !r.event.value.fatal)), answerTimeoutMs);
      } else if (e?.$case === "input" && !(await waitFor(() => answered(received, from, e.value.seq, event.eventId), answerTimeoutMs)) && !streamEnded) {
        timedOut.push(e.value.seq);
      }
    }
    if (!streamEnded) call.end();
    await waitAtMost(ended, 5000);
  } finally {
    client.close();
    await sidecar.shutdown();
  }
  const outputs = received.flatMap((e) => (e.event?.$case === "output" ? [e.event.value] : []));
  const errors = received.flatMap((e) => (e.event?.$case === "error" ? [e.event.value] : []));
  const problems = [
    ...timedOut.map((seq) => `input seq ${seq} got no answer within ${answerTimeoutMs} ms; replay went on without it`),
    ...(errors.length > 0 ? [`the sidecar sent ${errors.length} error event${errors.length > 1 ? "s" : ""}: ${errors.slice(0, 3).map(describeError).join("; ")}${errors.length > 3 ? "; …" : ""}`] : []),
    ...(status === undefined ? ["the stream did not end within 5 s of the last event"] : []),
    ...(status !== undefined && status.code !== grpc.status.OK ? [`the stream ended with ${grpc.status[status.code]}: ${status.details}`] : []),
    ...(sent < events.length ? [`${events.length - sent} recorded events were not sent: the stream had ended`] : []),
  ];
  return { outputs, events: received, timedOut, unsent: events.length - sent, status, problems };
}

/**
 * The event as replay sends it: the recorded events stay as they are. The
 * start asks for no recording. An input without an eventId gets one, which
 * the session echoes in an error refusing it: that is how its answer is known
 * (a SEQ_GAP error names the seq the session expects, not the one sent).
 */
function forReplay(recorded: ClientEvent, index: number): ClientEvent {
  const e = recorded.event;
  if (e?.$case === "start") return { ...recorded, event: { ...e, value: { ...e.value, config: e.value.config && { ...e.value.config, record: false } } } };
  if (e?.$case === "input" && recorded.eventId === "") return { ...recorded, eventId: `replay-${index + 1}` };
  return recorded;
}

/**
 * Whether the input sent when `from` events had been received has its answer:
 * its output; a duplicate ack (a seq already taken gets nothing more); an
 * error naming the event (refused); or, once it was taken, an error for its
 * seq (a failed micro-turn sends no output).
 */
function answered(received: ServerEvent[], from: number, seq: number, eventId: string): boolean {
  let taken = false;
  for (let i = from; i < received.length; i++) {
    const e = received[i]!.event;
    if (e?.$case === "output" && e.value.seq === seq) return true;
    if (e?.$case === "inputAck" && e.value.seq === seq) {
      if (e.value.duplicate) return true;
      taken = true;
    }
    if (e?.$case === "error" && (e.value.eventId === eventId || (taken && e.value.seq === seq))) return true;
  }
  return false;
}

function describeError(error: SessionError): string {
  return `${errorCodeToJSON(error.code).replace(/^ERROR_CODE_/, "")} (seq ${error.seq}): ${error.message}`;
}

/** Recording files of `sessionId` beside the first, numbered past `part`. */
async function laterParts(dir: string, sessionId: string, part: number): Promise<string[]> {
  const later = (await readdir(dir)).flatMap((name) => {
    const n = recordingPartOf(sessionId, name);
    return n !== undefined && n > part ? [n] : [];
  });
  return later.sort((x, y) => x - y).map((n) => recordingFileName(sessionId, n));
}

/**
 * A session's whole recording: the file given (its first part) and, read
 * beside it, the parts the session wrote on the sidecars it moved to
 * (`<session id>.part2.jsonl`, …, up to the first one missing), their events
 * and context in order. Warnings name their file.
 */
export async function readSessionRecording(path: string): Promise<Recording & { files: string[]; missingPart?: number; noContextIn?: string }> {
  const first = await readRecordingFile(path);
  const { sessionId } = first.header;
  if (first.header.part !== undefined) {
    throw new RecordingError(`${path} is part ${first.header.part} of session ${sessionId}'s recording: replay its first part, ${recordingFileName(sessionId)}, and the later parts are read beside it`);
  }
  const files: string[] = [];
  const events: ClientEvent[] = [];
  const context = new Map<number, ContextItem[]>();
  /** The first file that kept no context (written by an older sidecar): the replay cannot hold the model to what it read. */
  let noContextIn: string | undefined;
  const warnings: string[] = [];
  let lastSeq: number | undefined;
  const add = (file: string, recording: Recording): void => {
    // A later part goes on from the seq the client sent next (or one it sends again): a later first seq means
    // the part before stopped early (its sidecar could not keep writing it), and the replay will meet the gap.
    const seqs = inputSeqs(recording.events);
    if (lastSeq !== undefined && seqs[0] !== undefined && seqs[0] > lastSeq + 1) {
      warnings.push(`${file} starts at input seq ${seqs[0]}, but the parts before it end at seq ${lastSeq}: part ${files.length} stopped early (its sidecar could not keep writing it), so the replay meets a seq gap there`);
    }
    lastSeq = seqs.at(-1) ?? lastSeq;
    files.push(file);
    events.push(...recording.events);
    if (recording.context) for (const [seq, items] of recording.context) appendContext(context, seq, items);
    else noContextIn ??= file;
    warnings.push(...recording.warnings.map((w) => `${file}: ${w}`));
  };
  add(path, first);
  let missingPart: number | undefined;
  for (let part = 2; ; part++) {
    const next = join(dirname(path), recordingFileName(sessionId, part));
    if (!existsSync(next)) {
      // A part missing before later ones (a sidecar on the way could not write its file): what follows the gap
      // cannot be replayed as the session went, and is not; say so rather than replay a shortened session quietly.
      const later = await laterParts(dirname(path), sessionId, part);
      if (later.length > 0) {
        warnings.push(`part ${part} of session ${sessionId} is missing; not replayed after it: ${later.join(", ")}`);
        missingPart = part;
      }
      break;
    }
    const more = await readRecordingFile(next);
    if (more.header.sessionId !== sessionId || more.header.part !== part) {
      throw new RecordingError(`${next}: expected part ${part} of session ${sessionId}, its header says part ${more.header.part ?? 1} of ${more.header.sessionId}`);
    }
    add(next, more);
  }
  return {
    header: first.header,
    events,
    context: noContextIn ? undefined : context,
    warnings,
    files,
    ...(missingPart !== undefined ? { missingPart } : {}),
    ...(noContextIn ? { noContextIn } : {}),
  };
}

/** Adds `items` to what the model read at `seq` (a seq met twice: its micro-turn ran again after a move, and the model had both). */
function appendContext(context: Map<number, ContextItem[]>, seq: number, items: readonly ContextItem[]): void {
  context.set(seq, [...(context.get(seq) ?? []), ...items]);
}

/** The seqs of the input chunks among `events`, in order. */
function inputSeqs(events: readonly ClientEvent[]): number[] {
  return events.flatMap((e) => (e.event?.$case === "input" ? [e.event.value.seq] : []));
}

/**
 * Where the replayed model's background and tool results come from: the
 * recording (`recorded`, the default: the same input at the same micro-turns)
 * or the replay's own tools and background model as they answer (`live`).
 */
export type ReplayContextMode = "recorded" | "live";

export async function replayFile(path: string, config: SidecarConfig, mode: ReplayContextMode = "recorded"): Promise<number> {
  const { header, events, context, warnings, files, missingPart, noContextIn } = await readSessionRecording(path);
  for (const warning of warnings) process.stderr.write(`microturn replay: warning: ${warning}\n`);
  const parts = files.length > 1 ? ` from ${files.length} files (the session moved between sidecars: ${files.join(", ")})` : "";
  process.stdout.write(`replaying ${events.length} events of session ${header.sessionId} (recorded ${header.startedAt})${parts} on engine ${config.engine}\n`);
  const script = mode === "recorded" ? context : undefined;
  if (script) {
    const items = [...script.values()].reduce((n, list) => n + list.length, 0);
    process.stdout.write(`context as recorded: ${items} background and tool result${items === 1 ? "" : "s"} at ${script.size} micro-turn${script.size === 1 ? "" : "s"} (--context live lets the replay's own tools and background model answer)\n`);
  } else if (mode === "recorded") {
    process.stdout.write(`context live: ${noContextIn} was written by an older sidecar (microturn-recording/1) and kept none, so background and tool results join as they arrive in the replay\n`);
  } else {
    process.stdout.write("context live: background and tool results join as the replay's tools and background model answer\n");
  }
  const result = await replayEvents(events, config, {}, script ? { context: script } : {});
  for (const e of result.events) {
    if (e.event?.$case === "output") process.stdout.write(`seq ${String(e.event.value.seq).padStart(4)}  ${e.event.value.silent ? "(silent)" : JSON.stringify(e.event.value.text)}\n`);
    if (e.event?.$case === "error") process.stdout.write(`error     ${describeError(e.event.value)}\n`);
  }
  const { outputs, timedOut, unsent, problems } = result;
  const errors = result.events.filter((e) => e.event?.$case === "error").length;
  process.stdout.write(`${JSON.stringify({ replay: path, outputs: outputs.length, errors, timedOut, unsent, text: outputs.map((o) => o.text).join("") })}\n`);
  for (const problem of problems) process.stderr.write(`microturn replay: ${problem}\n`);
  // A session replayed only up to a missing part did not go through whole.
  if (missingPart !== undefined) process.stderr.write(`microturn replay: replayed only up to the missing part ${missingPart}\n`);
  return problems.length > 0 || missingPart !== undefined ? 1 : 0;
}
