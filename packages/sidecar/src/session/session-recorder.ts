// Writes every client event of a session, with its arrival time, to a JSONL
// file that `microturn replay` feeds back to any engine (see replay.ts).
import { createWriteStream, mkdirSync, type WriteStream } from "node:fs";
import { join } from "node:path";
import { ClientEvent } from "@microturn/protocol";

export const RECORDING_FORMAT = "microturn-recording/1";

export interface RecordingHeader {
  format: typeof RECORDING_FORMAT;
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
  /** The event in protobuf JSON form. */
  event: unknown;
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
    const line: RecordedEvent = { tMs: Math.round(performance.now() - this.t0), event: ClientEvent.toJSON(event) };
    this.out!.write(`${JSON.stringify(line)}\n`);
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
