// `microturn replay FILE`: feeds a recorded session to a sidecar on any engine.
// The loop runs on input time, so replay goes in lockstep (each chunk's output
// before the next chunk) and the same engine gives the same outputs.
import { readFileSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";
import { ClientEvent, InteractionClient, type OutputChunk, type ServerEvent } from "@microturn/protocol";
import { startSidecar, type SidecarOverrides } from "./app.js";
import type { SidecarConfig } from "./config.js";
import { createLogger } from "./logger.js";
import { RECORDING_FORMAT, type RecordedEvent, type RecordingHeader } from "./session/session-recorder.js";
import { waitAtMost } from "./timers.js";

export class RecordingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RecordingError";
  }
}

export function readRecording(text: string): { header: RecordingHeader; events: ClientEvent[] } {
  const lines = text.split("\n").filter((l) => l.trim() !== "");
  if (lines.length === 0) throw new RecordingError("recording is empty");
  const parse = (line: string, index: number): unknown => {
    try {
      return JSON.parse(line);
    } catch {
      throw new RecordingError(`recording line ${index + 1} is not JSON`);
    }
  };
  const header = parse(lines[0]!, 0) as RecordingHeader;
  if (header.format !== RECORDING_FORMAT) throw new RecordingError(`not a ${RECORDING_FORMAT} file (format: ${String(header.format)})`);
  const events = lines.slice(1).map((line, i) => ClientEvent.fromJSON((parse(line, i + 1) as RecordedEvent).event));
  return { header, events };
}

export interface ReplayResult {
  outputs: OutputChunk[];
  events: ServerEvent[];
}

/** Replays events against a fresh in-process sidecar; returns what it answered. */
export async function replayEvents(events: ClientEvent[], config: SidecarConfig, overrides: SidecarOverrides = {}): Promise<ReplayResult> {
  const sidecar = await startSidecar({ ...config, port: 0, httpPort: -1, recordDir: "" }, { logger: createLogger("warn"), ...overrides });
  const client = new InteractionClient(sidecar.server.grpcAddress, grpc.credentials.createInsecure());
  const call = client.converse();
  const received: ServerEvent[] = [];
  let wake: (() => void) | undefined;
  call.on("data", (e: ServerEvent) => {
    received.push(e);
    wake?.();
  });
  const ended = new Promise<void>((resolve) => {
    call.on("end", resolve);
    call.on("error", () => resolve());
  });
  const answered = (seq: number) => received.some((e) => (e.event?.$case === "output" && e.event.value.seq === seq) || (e.event?.$case === "error" && e.event.value.seq === seq));
  try {
    for (const event of events) {
      const e = event.event;
      if (e?.$case === "start") e.value.config = e.value.config && { ...e.value.config, record: false };
      call.write(event);
      if (e?.$case === "input") {
        const seq = e.value.seq;
        const deadline = Date.now() + 60_000;
        while (!answered(seq) && Date.now() < deadline) await new Promise<void>((resolve) => ((wake = resolve), setTimeout(resolve, 100)));
      }
    }
    call.end();
    await waitAtMost(ended, 5000);
  } finally {
    client.close();
    await sidecar.shutdown();
  }
  const outputs = received.flatMap((e) => (e.event?.$case === "output" ? [e.event.value] : []));
  return { outputs, events: received };
}

export async function replayFile(path: string, config: SidecarConfig): Promise<number> {
  const { header, events } = readRecording(readFileSync(path, "utf8"));
  process.stdout.write(`replaying ${events.length} events of session ${header.sessionId} (recorded ${header.startedAt}) on engine ${config.engine}\n`);
  const { outputs, events: received } = await replayEvents(events, config);
  for (const o of outputs) process.stdout.write(`seq ${String(o.seq).padStart(4)}  ${o.silent ? "(silent)" : JSON.stringify(o.text)}\n`);
  const errors = received.filter((e) => e.event?.$case === "error").length;
  process.stdout.write(`${JSON.stringify({ replay: path, outputs: outputs.length, errors, text: outputs.map((o) => o.text).join("") })}\n`);
  return 0;
}
