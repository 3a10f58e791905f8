// The demo page: connects to a sidecar over WebSocket with the browser SDK,
// streams the microphone (and typed text) as 200 ms chunks, renders the
// session's timeline and transcript, and plays any output audio.
import { ErrorCode, Microturn, OutputMode, UnsupportedInput, type InteractionSession } from "@microturn/sdk/browser";
import type { PcmAudio, SessionStarted } from "@microturn/protocol";
import { OutputPlayer, startMicrophone, type Microphone } from "./audio-io.js";
import { Timeline } from "./timeline.js";

// A text-only engine gets "[audio: 200 ms]" notes instead of an error per chunk.
const UNSUPPORTED_INPUT_NOTE = UnsupportedInput.UNSUPPORTED_INPUT_NOTE;
const OUTPUT_MODE_AUDIO = OutputMode.OUTPUT_MODE_AUDIO;
const ERROR_CODE_UNSUPPORTED_MODALITY = ErrorCode.ERROR_CODE_UNSUPPORTED_MODALITY;

function byId<T extends HTMLElement>(id: string): T {
  const node = document.getElementById(id);
  if (!node) throw new Error(`page is missing #${id}`);
  return node as T;
}

const view = {
  url: byId<HTMLInputElement>("url"),
  useMic: byId<HTMLInputElement>("use-mic"),
  start: byId<HTMLButtonElement>("start"),
  status: byId<HTMLElement>("status"),
  textForm: byId<HTMLFormElement>("text-form"),
  text: byId<HTMLInputElement>("text"),
  delegate: byId<HTMLButtonElement>("delegate"),
  timeline: new Timeline(byId<HTMLOListElement>("timeline"), byId("counts"), byId("transcript")),
};

const query = new URLSearchParams(location.search);
const defaultUrl = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/converse`;
view.url.value = query.get("url") ?? defaultUrl;
const apiKey = query.get("api_key") ?? undefined;
// TaskStatus by value, in the proto's order.
const TASK_STATUS = ["unspecified", "queued", "running", "done", "failed", "cancelled", "timed out"];
// Asks the sidecar to record the session (it does when started with --record-dir).
const record = query.get("record") === "1";

type State = "idle" | "connecting" | "live" | "closed";
let session: InteractionSession | undefined;
let microphone: Microphone | undefined;
let audio: AudioContext | undefined;

function setState(state: State, detail: string): void {
  view.status.dataset.state = state;
  view.status.textContent = detail;
  view.start.textContent = state === "live" || state === "connecting" ? "Stop" : "Start";
  view.start.disabled = state === "connecting";
  view.text.disabled = state !== "live";
  view.delegate.disabled = state !== "live";
}

function pcmMs(pcm: PcmAudio | undefined): number {
  return pcm && pcm.sampleRateHz > 0 ? (pcm.pcm16.length / 2 / Math.max(1, pcm.channels) / pcm.sampleRateHz) * 1000 : 0;
}

function report(error: unknown): void {
  // Session errors the server marks non-fatal (e.g. "audio replaced by a note") leave the session running.
  const fatal = (error as { fatal?: boolean } | undefined)?.fatal !== false;
  view.timeline.error(error instanceof Error ? `${error.name}: ${error.message}` : String(error), fatal);
}

/**
 * The page is a voice assistant: it asks the session to speak, at the page's own
 * sample rate. An engine that only writes text refuses that start
 * (UNSUPPORTED_MODALITY); the page then starts a text session instead.
 */
async function connectSpeakingIfPossible(client: Microturn, sampleRateHz: number): Promise<InteractionSession> {
  const config = { instructions: "You are a friendly voice assistant. Keep answers short.", unsupportedInput: UNSUPPORTED_INPUT_NOTE, record };
  // The sidecar sends 8-48 kHz; a page running faster takes 48 kHz and lets Web Audio resample.
  const outputSampleRateHz = Math.min(48_000, Math.max(8_000, Math.round(sampleRateHz)));
  const speaking = client.session({ ...config, outputMode: OUTPUT_MODE_AUDIO, outputSampleRateHz });
  try {
    return await speaking.connect({ signal: AbortSignal.timeout(15_000) });
  } catch (error) {
    if ((error as { sessionError?: { code?: number } }).sessionError?.code !== ERROR_CODE_UNSUPPORTED_MODALITY) throw error;
  }
  view.timeline.event("session", "the engine writes text only: the answers come as text");
  return client.session(config).connect({ signal: AbortSignal.timeout(15_000) });
}

async function start(): Promise<void> {
  setState("connecting", `connecting to ${view.url.value} …`);
  // Created inside the click so the browser lets it play sound.
  audio ??= new AudioContext();
  await audio.resume();
  const client = new Microturn({ url: view.url.value, apiKey });
  const tl = view.timeline;
  // The microphone first: a refused permission stops here, before a session is opened for nothing.
  let connected: InteractionSession | undefined;
  const rateHz = audio.sampleRate;
  const mic = view.useMic.checked
    ? await startMicrophone(audio, new URL("./mic-worklet.js", import.meta.url), (samples) => {
        if (connected && session === connected) connected.sendAudio(samples, rateHz);
      })
    : undefined;
  try {
    connected = await connectSpeakingIfPossible(client, audio.sampleRate);
  } catch (err) {
    mic?.stop();
    throw err;
  }
  const live = connected;
  session = live;
  microphone = mic;
  const player = new OutputPlayer(audio, (playedUpToMs) => {
    if (session === live) live.ackPlayback(playedUpToMs);
  });
  const describe = (s: SessionStarted) => {
    const caps = s.capabilities;
    const model = caps ? ` · engine ${caps.engine}, model ${caps.modelId}${caps.randomWeights ? " (random weights: its output is noise)" : ""}` : "";
    tl.event("session", `${s.resumed ? "resumed" : "started"} ${s.sessionId}${model}`);
  };
  if (live.started) describe(live.started);
  live.on("started", describe);
  live.on("inputSent", (chunk) => tl.input(chunk.seq, chunk.startMs, pcmMs(chunk.pcm), chunk.text));
  live.on("output", (out) => tl.output(out.seq, out.text, out.silent, pcmMs(out.audio), out.latencyMs));
  live.on("background", (u) => tl.background(u.taskId, TASK_STATUS[u.status] ?? String(u.status), u.content || u.errorMessage));
  live.on("error", report);
  live.on("reconnecting", ({ attempt, delayMs }) => tl.event("reconnect", `attempt ${attempt} in ${Math.round(delayMs)} ms`));
  live.on("reconnected", ({ sessionId, resentChunks }) => tl.event("reconnect", `resumed ${sessionId}, resent ${resentChunks} chunks`));
  live.on("close", ({ error }) => {
    if (session === live) {
      session = undefined;
      microphone?.stop();
      microphone = undefined;
    }
    tl.event("session", error ? `closed: ${error.message}` : "closed");
    setState("closed", error ? `closed: ${error.message}` : "closed");
  });

  setState("live", `live · ${view.url.value}`);
  void (async () => {
    for await (const piece of live.audio()) player.play(piece.samples, piece.sampleRateHz, piece.startMs);
  })().catch(() => undefined); // the close listener already reports how the session ended
  if (mic) tl.event("microphone", `capturing at ${mic.sampleRateHz} Hz, sent in 200 ms pieces`);
}

view.start.addEventListener("click", () => {
  if (session) {
    // Detach first: the worklet may still post a piece while close() waits for the server.
    const closing = session;
    session = undefined;
    microphone?.stop();
    microphone = undefined;
    setState("connecting", "closing …");
    void closing
      .close({ reason: "user stopped" })
      .catch(report)
      .finally(() => {
        if (view.status.dataset.state === "connecting") setState("closed", "closed");
      });
    return;
  }
  start().catch((error: unknown) => {
    report(error);
    const failed = session;
    session = undefined;
    microphone?.stop();
    microphone = undefined;
    void failed?.close().catch(() => undefined);
    setState("closed", "could not start: see the timeline");
  });
});

view.textForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = view.text.value.trim();
  if (!text || !session) return;
  session.sendText(text);
  view.text.value = "";
});

// The typed text as a background task; its updates arrive as `background` events.
view.delegate.addEventListener("click", () => {
  const text = view.text.value.trim();
  if (!text || !session) return;
  const task = session.delegate(text, { timeoutMs: 60_000 });
  view.timeline.event("background", `task ${task.id} delegated: ${text}`);
  view.text.value = "";
});

window.addEventListener("error", (event) => report(event.error ?? event.message));
window.addEventListener("unhandledrejection", (event) => report(event.reason));
setState("idle", "not connected");
