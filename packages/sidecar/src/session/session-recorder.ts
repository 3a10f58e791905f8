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
}

export interface RecordedEvent {
  /** Milliseconds since the session started (wall clock, for reference). */
  tMs: number;
  /** The event in protobuf JSON form. */
  event: unknown;
}

export class SessionRecorder {
  readonly path: string;
  private readonly out: WriteStream;
  private readonly t0 = performance.now();

  constructor(dir: string, sessionId: string) {
    mkdirSync(dir, { recursive: true });
    this.path = join(dir, `${sessionId}.jsonl`);
    this.out = createWriteStream(this.path, { flags: "w" });
    const header: RecordingHeader = { format: RECORDING_FORMAT, sessionId, startedAt: new Date().toISOString() };
    this.out.write(`${JSON.stringify(header)}\n`);
  }

  record(event: ClientEvent): void {
    const line: RecordedEvent = { tMs: Math.round(performance.now() - this.t0), event: ClientEvent.toJSON(event) };
    this.out.write(`${JSON.stringify(line)}\n`);
  }

  /** Flushes and closes the file; returns its path. */
  close(): Promise<string> {
    return new Promise((resolve) => this.out.end(() => resolve(this.path)));
  }
}
