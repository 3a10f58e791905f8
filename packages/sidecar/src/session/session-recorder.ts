// Writes every client event of a session, with its arrival time, and what
// entered the model's context at each boundary, to a JSONL file that
// `microturn replay` feeds back to any engine (see replay.ts).
import { createWriteStream, mkdirSync, type WriteStream } from "node:fs";
import { join } from "node:path";
import { ClientEvent, ContextItem } from "@microturn/protocol";

/** The format this sidecar writes: /2 added the context lines. */
export const RECORDING_FORMAT = "microturn-recording/2";
/** Formats replay reads: a /1 file has no context lines (replay then takes the results as they arrive). */
export const RECORDING_FORMATS = ["microturn-recording/1", RECORDING_FORMAT] as const;
export type RecordingFormat = (typeof RECORDING_FORMATS)[number];

/**
 * How far the file may fall behind the session before the recording stops
 * (a disk that does not keep up): unwritten lines wait in memory.
 */
export const MAX_UNWRITTEN_BYTES = 16 * 1024 * 1024;

export interface RecordingHeader {
  format: RecordingFormat;
  sessionId: string;
  startedAt: string;
  /**
   * Which file of the session this is, from 2 (absent in the first): a session
   * that moved to another sidecar goes on in `<session id>.part<N>.jsonl` there.
   */
  part?: number;
}

/** The file name of part `part` (from 1) of a session's recording. */
export function recordingFileName(sessionId: string, part = 1): string {
  return part > 1 ? `${sessionId}.part${part}.jsonl` : `${sessionId}.jsonl`;
}

/** Which part of `sessionId`'s recording `fileName` names (recordingFileName read back); undefined for another file. */
export function recordingPartOf(sessionId: string, fileName: string): number | undefined {
  if (fileName === recordingFileName(sessionId)) return 1;
  const prefix = `${sessionId}.part`;
  if (!fileName.startsWith(prefix) || !fileName.endsWith(".jsonl")) return undefined;
  const part = Number(fileName.slice(prefix.length, -".jsonl".length));
  return Number.isInteger(part) && part > 1 && recordingFileName(sessionId, part) === fileName ? part : undefined;
}

export interface RecordedEvent {
  /** Milliseconds since the session started (wall clock, for reference). */
  tMs: number;
  /**
   * The event in protobuf JSON form. An enum value this sidecar does not know
   * is written UNRECOGNIZED, which the session treats as it treated the number.
   */
  event: unknown;
}

/** What entered the model's context at the boundary of input `seq` (background and tool results), in order. */
export interface RecordedContext {
  tMs: number;
  context: { seq: number; items: unknown[] };
}

/**
 * A session's recording. A file that cannot be created or written (directory
 * missing rights, disk full) stops the recording, not the session: `onError`
 * hears of it once, and the session's end reports no recording path.
 */
export class SessionRecorder {
  readonly path: string;
  private readonly out: WriteStream | undefined;
  private readonly t0 = performance.now();
  private failed = false;
  private closed = false;

  constructor(
    dir: string,
    sessionId: string,
    private readonly onError: (err: Error) => void = () => undefined,
    /** Which file of the session's recording this is: 1, or more after it moved between sidecars. */
    readonly part = 1,
  ) {
    this.path = join(dir, recordingFileName(sessionId, part));
    try {
      mkdirSync(dir, { recursive: true });
      this.out = createWriteStream(this.path, { flags: "w" });
    } catch (err) {
      this.fail(err as Error);
      return;
    }
    this.out.on("error", (err) => this.fail(err));
    const header: RecordingHeader = { format: RECORDING_FORMAT, sessionId, startedAt: new Date().toISOString(), ...(part > 1 ? { part } : {}) };
    this.out.write(`${JSON.stringify(header)}\n`);
  }

  /** False once the file failed: nothing more is written. */
  get recording(): boolean {
    return !this.failed && !this.closed;
  }

  record(event: ClientEvent): void {
    if (!this.recording) return;
    const line: RecordedEvent = { tMs: this.elapsedMs(), event: ClientEvent.toJSON(event) };
    this.write(line);
  }

  /** The context items delivered at input `seq`'s boundary. */
  recordContext(seq: number, items: readonly ContextItem[]): void {
    if (!this.recording || items.length === 0) return;
    const line: RecordedContext = { tMs: this.elapsedMs(), context: { seq, items: items.map((item) => ContextItem.toJSON(item)) } };
    this.write(line);
  }

  private elapsedMs(): number {
    return Math.round(performance.now() - this.t0);
  }

  private write(line: RecordedEvent | RecordedContext): void {
    const out = this.out!;
    // The session does not wait for the disk: a file that falls too far behind stops, rather than hold the session's memory.
    if (out.writableLength > MAX_UNWRITTEN_BYTES) {
      this.fail(new Error(`the recording fell ${Math.round(out.writableLength / 1024 / 1024)} MiB behind the session (the disk does not keep up); it stops here`));
      return;
    }
    out.write(`${JSON.stringify(line)}\n`);
  }

  /** Flushes and closes the file; returns its path, or "" when the recording failed. */
  close(): Promise<string> {
    if (this.closed || !this.out) return Promise.resolve(this.failed ? "" : this.path);
    this.closed = true;
    const out = this.out;
    return new Promise((resolve) => {
      const done = () => resolve(this.failed ? "" : this.path);
      if (out.destroyed) return done();
      out.once("close", done);
      out.end();
    });
  }

  private fail(err: Error): void {
    if (this.failed) return;
    this.failed = true;
    this.out?.destroy();
    this.onError(err);
  }
}
