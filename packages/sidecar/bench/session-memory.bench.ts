// npm run bench:memory — what a live session keeps in memory as it runs.
//
// Sessions are driven through the real session hub (micro-turn loop, outbox,
// dMel and patchify of the media) on the echo engine with media, as fast as
// the loop goes: the loop runs on input time, so ten minutes of input take
// seconds (the outbox's clock follows input time too). At each checkpoint the heap is collected and the memory held per
// session is printed (V8 heap plus the buffers outside it, where audio and
// video live), for three inputs: text only; 16 kHz speech; speech plus one
// 640x480 video frame per chunk. The media rows run twice: with the default
// rewind window and with an unbounded one (what a session kept before the
// window existed: every turn's input up to 3,000 turns; with video that run
// stops at 5 minutes, 1.3 GB a session).
// Prints a table, then one JSON line. Needs node --expose-gc (the npm script
// passes it).
import { InputChunk, SessionConfig, type ServerEvent } from "@microturn/protocol";
import { createEchoEngine } from "../src/engines/echo/index.js";
import { createLogger } from "../src/logger.js";
import { SessionInputMedia } from "../src/session/input-media.js";
import { SessionHub, type SessionHandle } from "../src/session/session-hub.js";
import { DEFAULT_REWIND_HORIZON_MS } from "../src/session/turn-history.js";
import { benchArgs } from "./args.js";

const args = benchArgs();
const SESSIONS = Number(args.get("sessions") ?? 2);
const CHECKPOINTS_MIN = (args.get("minutes") ?? "1,5,10").split(",").map(Number);
const CHUNK_MS = 200;
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with node --expose-gc (npm run bench:memory does)");

const CONFIG = SessionConfig.fromPartial({ chunkDurationMs: CHUNK_MS, maxOutputTokensPerTurn: 4, inputSampleRateHz: 16000 });
/** Without a window a video session holds about 0.9 MB a chunk: that run stops earlier. */
const NO_WINDOW_VIDEO_MIN = Number(args.get("no-window-video-minutes") ?? 5);

type Input = "text" | "speech" | "speech+video";

/** 200 ms of a 220 Hz tone at 16 kHz, as PCM16 bytes. */
function speech(): Uint8Array {
  const samples = new Int16Array((16000 * CHUNK_MS) / 1000);
  for (let i = 0; i < samples.length; i++) samples[i] = Math.round(8000 * Math.sin((2 * Math.PI * 220 * i) / 16000));
  return new Uint8Array(samples.buffer);
}

function frame(): Uint8Array {
  const rgb = new Uint8Array(640 * 480 * 3);
  for (let i = 0; i < rgb.length; i++) rgb[i] = (i * 31) & 0xff;
  return rgb;
}

const PCM = speech();
const FRAME = frame();

function chunk(input: Input, seq: number): InputChunk {
  return InputChunk.fromPartial({
    seq,
    startMs: seq * CHUNK_MS,
    durationMs: CHUNK_MS,
    // Every fifth chunk carries words, so the model answers and output is kept too.
    text: input === "text" || seq % 5 === 0 ? "hello there" : "",
    userSpeaking: true,
    ...(input === "text" ? {} : { pcm: { sampleRateHz: 16000, channels: 1, pcm16: PCM } }),
    ...(input === "speech+video" ? { frames: [{ widthPx: 640, heightPx: 480, rgb: FRAME, offsetMs: 0 }] } : {}),
  });
}

function heldMb(): { heap: number; outside: number } {
  gc!();
  gc!();
  const m = process.memoryUsage();
  return { heap: m.heapUsed / 2 ** 20, outside: m.arrayBuffers / 2 ** 20 };
}

async function run(input: Input, rewindHorizonMs: number, checkpoints = CHECKPOINTS_MIN): Promise<Record<string, number>> {
  // The echo engine's sequence (its stand-in for the KV cache) lives in this heap too: at its default
  // capacity of 65,536 tokens a session rolls over, as on a real engine, and that share stays bounded.
  const engine = await createEchoEngine({ media: true });
  let clockMs = 0;
  const hub = new SessionHub({
    engine,
    limits: { maxOutputTokensPerTurn: 4, maxQueuedChunks: 50, rewindHorizonMs },
    maxSessions: SESSIONS,
    resumeGraceMs: 30_000,
    recordDir: "",
    logger: createLogger("error"),
    createMedia: () => new SessionInputMedia(),
    // The clock the outbox ages events by follows input time, as at real-time pace.
    now: () => clockMs,
  });
  const sink = { send: (_event: ServerEvent) => undefined };
  const before = heldMb();
  const handles: SessionHandle[] = [];
  for (let i = 0; i < SESSIONS; i++) handles.push(await hub.create(CONFIG, sink));
  const perSession: Record<string, number> = {};
  let seq = 0;
  for (const minutes of checkpoints) {
    for (; seq < (minutes * 60_000) / CHUNK_MS; seq++) {
      clockMs = seq * CHUNK_MS;
      const c = chunk(input, seq);
      for (const h of handles) h.session.acceptInput(c);
      await Promise.all(handles.map((h) => h.session.whenIdle()));
    }
    const now = heldMb();
    const mb = (now.heap - before.heap + now.outside - before.outside) / SESSIONS;
    perSession[`${minutes}min`] = Number(mb.toFixed(2));
    const window = rewindHorizonMs === DEFAULT_REWIND_HORIZON_MS ? `window ${rewindHorizonMs / 1000} s` : "no window";
    console.log(
      `${input.padEnd(13)} ${window.padEnd(12)} ${String(minutes).padStart(3)} min  per session ${mb.toFixed(2).padStart(9)} MB  (heap ${((now.heap - before.heap) / SESSIONS).toFixed(2)}, buffers ${((now.outside - before.outside) / SESSIONS).toFixed(2)})`,
    );
  }
  await hub.closeAll("bench over");
  await engine.dispose();
  return perSession;
}

async function main(): Promise<void> {
  console.log(`bench:memory — ${SESSIONS} sessions on the echo engine with media, chunks of ${CHUNK_MS} ms, memory held per session (node ${process.version})`);
  const result: Record<string, Record<string, number>> = {};
  for (const input of ["text", "speech", "speech+video"] as const) {
    result[`${input}`] = await run(input, DEFAULT_REWIND_HORIZON_MS);
    if (input === "text") continue;
    const checkpoints = input === "speech+video" ? CHECKPOINTS_MIN.filter((m) => m <= NO_WINDOW_VIDEO_MIN) : CHECKPOINTS_MIN;
    result[`${input}_no_window`] = await run(input, Number.MAX_SAFE_INTEGER, checkpoints);
  }
  console.log(JSON.stringify({ bench: "session-memory", sessions: SESSIONS, mb_per_session: result }));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
