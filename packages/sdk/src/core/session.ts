// One interaction session: frames input into chunks, sends control events,
// runs client-side tools, tracks background tasks and exposes the server's
// events as typed emitter events and async iterables.
import { EventEmitter } from "eventemitter3";
import {
  DeliveryMode,
  type InputChunk,
  Modality,
  PROTOCOL_VERSION,
  type ServerEvent,
  type SessionConfig,
  type SessionStarted,
  type ToolResult,
  type VideoFrame,
} from "@microturn/protocol";
import { AbortError, type MicroturnError } from "./error.js";
import { errorFromSessionError, type SessionAPIError } from "./grpc-error.js";
import { BackgroundTask } from "./background-task.js";
import { InvalidInputError, SessionClosedError } from "./session-errors.js";
import type { Transport } from "./transport.js";
import type { OutputAudio, SessionEvent, SessionEvents } from "./session-events.js";
import { throwIfAborted } from "../internal/abort.js";
import { AsyncQueue } from "../internal/async-queue.js";
import { type ReconnectOptions, type ResolvedReconnectOptions, resolveReconnectOptions } from "../internal/backoff.js";
import { InputClock } from "../internal/input-clock.js";
import { frameCost, INPUT_SAMPLE_RATE_HZ, InputFramer, textCost, wireBytes } from "../internal/input-framer.js";
import { bytesToInt16, PcmResampler, toInt16, validateSampleRate } from "../internal/pcm.js";
import { SessionLink } from "../internal/session-link.js";
import { type ToolDefinition, type ToolHandler, ToolRunner } from "../internal/tool-runner.js";
import { MAX_TIMER_MS, optionNumber, validateMs, validateVideoFrame } from "../internal/validate.js";

/** SessionConfig as an app writes it: every field optional; tools come from `session.tools`. */
export type SessionConfigInput = Partial<Omit<SessionConfig, "tools" | "inputSampleRateHz" | "chunkDurationMs">> & {
  /** Tools declared up front (same as calling `session.tools.register` before connect); each handler declares its arguments' type. */
  tools?: Array<ToolDefinition & { name: string; handler: ToolHandler<never> }>;
};

export interface SessionOptions {
  /** `realtime`: a timer cuts a chunk every 200 ms. `manual`: the app calls flushChunk()/sendChunk(). Default realtime. */
  clock?: "realtime" | "manual";
  /** Nominal chunk length in ms; default 200. */
  chunkDurationMs?: number;
  reconnect?: ReconnectOptions;
  /** Time to wait for SessionStarted, in ms; default 10000. */
  connectTimeoutMs?: number;
  /** Time close() waits for the server's SessionEnded, in ms; default 5000. */
  closeTimeoutMs?: number;
  /** Sent chunks kept until acked, for resend after a drop; default 300 (60 s). */
  maxUnackedChunks?: number;
  /** Audio waiting to be framed beyond which sendAudio refuses more, in ms; default 60000. */
  maxPendingAudioMs?: number;
}

export interface ResolvedSessionOptions extends Required<Omit<SessionOptions, "reconnect">> {
  reconnect: ResolvedReconnectOptions;
}

/** The options with defaults filled in; a bad value throws InvalidInputError naming it. */
export function resolveSessionOptions(options: SessionOptions): ResolvedSessionOptions {
  const clock = options.clock ?? "realtime";
  if (clock !== "realtime" && clock !== "manual") throw new InvalidInputError(`clock must be "realtime" or "manual", got ${String(clock)}`);
  // Infinity: no timeout, as race() takes it.
  const timeout = { min: 1, max: MAX_TIMER_MS, infinite: true };
  const chunkDurationMs = optionNumber(options.chunkDurationMs, "chunkDurationMs", 200, { min: 10, max: 10_000 });
  return {
    clock,
    chunkDurationMs,
    reconnect: resolveReconnectOptions(options.reconnect),
    connectTimeoutMs: optionNumber(options.connectTimeoutMs, "connectTimeoutMs", 10_000, timeout),
    // 0: close() sends SessionEnd and does not wait for SessionEnded.
    closeTimeoutMs: optionNumber(options.closeTimeoutMs, "closeTimeoutMs", 5000, { ...timeout, min: 0 }),
    maxUnackedChunks: optionNumber(options.maxUnackedChunks, "maxUnackedChunks", 300, { min: 1, max: Number.MAX_SAFE_INTEGER, infinite: true }),
    maxPendingAudioMs: optionNumber(options.maxPendingAudioMs, "maxPendingAudioMs", 60_000, { min: chunkDurationMs, max: 3_600_000 }),
  };
}

/** How a background result is woven in: the proto enum or its short name. */
export type DeliveryOption = DeliveryMode | "interrupt" | "when_idle" | "silent";

const DELIVERY_BY_NAME: Record<Exclude<DeliveryOption, DeliveryMode>, DeliveryMode> = {
  interrupt: DeliveryMode.DELIVERY_MODE_INTERRUPT,
  when_idle: DeliveryMode.DELIVERY_MODE_WHEN_IDLE,
  silent: DeliveryMode.DELIVERY_MODE_SILENT,
};

function deliveryMode(option: DeliveryOption | undefined): DeliveryMode {
  if (option === undefined) return DeliveryMode.DELIVERY_MODE_UNSPECIFIED;
  if (typeof option === "number") return option;
  const mode = Object.hasOwn(DELIVERY_BY_NAME, option) ? DELIVERY_BY_NAME[option] : undefined;
  if (mode === undefined) throw new InvalidInputError(`delivery must be "interrupt", "when_idle", "silent" or a DeliveryMode, got ${JSON.stringify(option)}`);
  return mode;
}

export interface DelegateOptions {
  /** Default: the session's default delivery (SessionConfig.default_delivery). */
  delivery?: DeliveryOption;
  timeoutMs?: number;
  /** Defaults to a random id. */
  taskId?: string;
  /** Aborting cancels the task. */
  signal?: AbortSignal;
}

/** Parts of one chunk for apps that already hold 200 ms frames. */
export interface ChunkParts {
  text?: string;
  audio?: { samples: Int16Array | Float32Array; sampleRateHz: number };
  frames?: Array<{ rgb: Uint8Array; width: number; height: number; offsetMs?: number }>;
  userSpeaking?: boolean;
  /** The model must call this tool in this chunk's micro-turn (see requireToolCall). */
  toolChoice?: string;
}

export interface SessionTools {
  /** `Args` types the handler's parsed arguments, e.g. `async ({ city }: { city: string }) => …`. */
  register<Args = unknown>(name: string, definition: ToolDefinition, handler: ToolHandler<Args>): void;
  unregister(name: string): boolean;
}

export class InteractionSession extends EventEmitter<SessionEvents> {
  readonly tools: SessionTools;
  /** The server's latest SessionStarted: the one that opened the session, then the one answering each resume. */
  started: SessionStarted | undefined;
  private readonly link: SessionLink;
  private readonly framer: InputFramer;
  private readonly clock: InputClock | undefined;
  private readonly runner = new ToolRunner();
  private readonly tasks = new Map<string, BackgroundTask>();
  private readonly iterators = new Set<AsyncQueue<SessionEvent>>();
  /** The iterators over every event (not text() or audio()): their app may answer tool calls itself. */
  private readonly eventReaders = new Set<AsyncQueue<SessionEvent>>();
  private readonly resamplers = new Map<number, PcmResampler>();
  private readonly config: SessionConfigInput;
  private readonly closeTimeoutMs: number;
  private lastPlayedMs = 0;
  private closeError: MicroturnError | undefined;
  private closed = false;
  private closing: Promise<void> | undefined;
  /** Errors already dispatched as `error` events. */
  private readonly emittedErrors = new WeakSet<object>();

  constructor(transport: Transport, config: SessionConfigInput = {}, options: SessionOptions = {}) {
    super();
    this.config = config;
    const resolved = resolveSessionOptions(options);
    this.closeTimeoutMs = resolved.closeTimeoutMs;
    this.framer = new InputFramer({ chunkDurationMs: resolved.chunkDurationMs, maxPendingAudioMs: resolved.maxPendingAudioMs });
    this.link = new SessionLink(
      transport,
      { reconnect: resolved.reconnect, connectTimeoutMs: resolved.connectTimeoutMs, maxUnackedChunks: resolved.maxUnackedChunks },
      {
        event: (event, error) => this.onServerEvent(event, error),
        reconnecting: (info) => this.dispatch("reconnecting", info),
        reconnected: (info) => this.dispatch("reconnected", info),
        closed: (error) => this.onLinkClosed(error),
      },
    );
    if (resolved.clock === "realtime") {
      // After a stall the clock makes up every tick owed while audio waits, so later chunks are not late by it.
      this.clock = new InputClock(this.framer.chunkDurationMs, () => this.tick(), undefined, () => this.framer.pendingAudioMs >= this.framer.chunkDurationMs);
    }
    this.tools = {
      register: (name, definition, handler) => this.runner.register(name, definition, handler),
      unregister: (name) => this.runner.unregister(name),
    };
    for (const tool of config.tools ?? []) this.runner.register(tool.name, tool, tool.handler);
  }

  get id(): string {
    return this.link.sessionId;
  }
  get state(): SessionLink["state"] {
    return this.link.state;
  }
  /** Seq of the next input chunk. */
  get nextSeq(): number {
    return this.framer.nextSeq;
  }
  /** Audio pushed but not yet in a chunk, in ms. */
  get pendingAudioMs(): number {
    return this.framer.pendingAudioMs;
  }
  /** Seqs sent and not yet acked by the server. */
  get unackedSeqs(): number[] {
    return this.link.unackedSeqs;
  }

  /** Opens the session on the server; resolves once it answered SessionStarted. */
  async connect(options: { signal?: AbortSignal } = {}): Promise<this> {
    if (this.link.state !== "idle") throw new SessionClosedError(`connect() called on a session that is ${this.link.state}`);
    throwIfAborted(options.signal, "connect");
    this.runner.seal();
    const config: SessionConfig = {
      inputModalities: this.config.inputModalities ?? [Modality.MODALITY_TEXT, Modality.MODALITY_AUDIO],
      outputMode: this.config.outputMode ?? 0,
      inputSampleRateHz: INPUT_SAMPLE_RATE_HZ,
      outputSampleRateHz: this.config.outputSampleRateHz ?? 0,
      voice: this.config.voice ?? "",
      instructions: this.config.instructions ?? "",
      tools: this.runner.list(),
      defaultDelivery: this.config.defaultDelivery ?? 0,
      maxOutputTokensPerTurn: this.config.maxOutputTokensPerTurn ?? 0,
      chunkDurationMs: this.framer.chunkDurationMs,
      unsupportedInput: this.config.unsupportedInput ?? 0,
      labels: this.config.labels ?? {},
      record: this.config.record ?? false,
    };
    try {
      this.started = await this.link.start({ protocolVersion: PROTOCOL_VERSION, config }, options.signal);
    } catch (error) {
      // The caller gets the failure from connect(); the close event carries it without a second `error` event.
      this.onLinkClosed(error as MicroturnError, false);
      throw error;
    }
    // Events read with SessionStarted may already have closed the session (it failed for good, or ended): connect()
    // says so as it would have before SessionStarted, rather than hand back a session no call can use.
    if (this.closed) throw this.closeError ?? new SessionClosedError("the session ended as soon as it started");
    // (A `started` listener may have called close() meanwhile.)
    if (this.state !== "closing") this.clock?.start();
    return this;
  }

  /** Adds text to the current chunk. */
  sendText(text: string): void {
    this.assertOpen("sendText");
    if (typeof text !== "string") throw new InvalidInputError("sendText expects a string");
    this.framer.addText(text);
  }

  /** Adds mono audio to the input; it is resampled to 16 kHz and framed into 200 ms chunks. */
  sendAudio(samples: Int16Array | Float32Array, sampleRateHz: number): void {
    this.assertOpen("sendAudio");
    const rate = validateSampleRate(sampleRateHz);
    const int16 = toInt16(samples);
    let resampler = this.resamplers.get(rate);
    if (!resampler) {
      // The previous rate's stream ends here: what its filter held back (a couple of ms) is audio too.
      for (const previous of this.resamplers.values()) this.framer.addAudio(previous.flush());
      resampler = new PcmResampler(rate, INPUT_SAMPLE_RATE_HZ);
      this.resamplers.clear();
      this.resamplers.set(rate, resampler);
    }
    this.framer.addAudio(resampler.push(int16));
  }

  /** Adds one RGB video frame (width × height × 3 bytes) to the current chunk. */
  sendVideoFrame(rgb: Uint8Array, width: number, height: number, options: { offsetMs?: number } = {}): void {
    this.assertOpen("sendVideoFrame");
    validateVideoFrame(rgb, width, height);
    const offsetMs = options.offsetMs ?? this.clock?.elapsedInChunkMs() ?? 0;
    const frame: VideoFrame = { widthPx: width, heightPx: height, rgb: wireBytes(new Uint8Array(rgb)), offsetMs: validateMs(offsetMs, "offsetMs") };
    this.framer.addFrame(frame);
  }

  /**
   * The model must call this tool in the current chunk's micro-turn (like
   * tool_choice in chat APIs); it still writes the arguments, under the tool's
   * schema. Engines that cannot constrain decoding refuse the chunk with an error.
   */
  requireToolCall(name: string): void {
    this.assertOpen("requireToolCall");
    this.framer.setToolChoice(validateToolName(name));
  }

  /** Marks the current and later chunks as containing user speech (for when_idle delivery). */
  setUserSpeaking(speaking: boolean): void {
    this.assertOpen("setUserSpeaking");
    this.framer.setUserSpeaking(Boolean(speaking));
  }

  /** Cuts and sends the current chunk now (the manual clock; the realtime clock calls this every 200 ms). */
  flushChunk(): InputChunk {
    this.assertOpen("flushChunk");
    this.link.assertRoomForInput();
    const chunk = this.framer.cut();
    this.link.sendInput(chunk);
    this.dispatch("inputSent", chunk);
    return chunk;
  }

  /** Adds `parts` to the current chunk and sends it. */
  sendChunk(parts: ChunkParts = {}): InputChunk {
    this.assertOpen("sendChunk");
    this.link.assertRoomForInput();
    // Every part is checked before any is added: a refused chunk leaves nothing behind in the next one.
    let frameBytes = 0;
    for (const frame of parts.frames ?? []) {
      validateVideoFrame(frame.rgb, frame.width, frame.height);
      validateMs(frame.offsetMs ?? 0, "offsetMs");
      frameBytes += frameCost(frame.rgb.length);
    }
    if (parts.text !== undefined && typeof parts.text !== "string") throw new InvalidInputError("sendChunk expects text to be a string");
    this.framer.assertRoomForContent(frameBytes + textCost(parts.text ?? ""), "its text and video");
    const samples = parts.audio ? toInt16(parts.audio.samples) : undefined;
    if (parts.audio) {
      const rate = validateSampleRate(parts.audio.sampleRateHz);
      // At 16 kHz, about as many samples as the resampler will give (it may hold a few back).
      this.framer.assertRoomForAudio(Math.ceil((samples!.length * INPUT_SAMPLE_RATE_HZ) / rate));
    }
    if (parts.toolChoice !== undefined) validateToolName(parts.toolChoice);
    if (parts.text !== undefined) this.sendText(parts.text);
    if (parts.audio) this.sendAudio(samples!, parts.audio.sampleRateHz);
    for (const frame of parts.frames ?? []) this.sendVideoFrame(frame.rgb, frame.width, frame.height, { offsetMs: frame.offsetMs ?? 0 });
    if (parts.userSpeaking !== undefined) this.setUserSpeaking(parts.userSpeaking);
    if (parts.toolChoice !== undefined) this.requireToolCall(parts.toolChoice);
    return this.flushChunk();
  }

  /** Reports how much output the user has actually heard, in ms of output time. */
  ackPlayback(playedUpToMs: number): void {
    this.assertOpen("ackPlayback");
    this.lastPlayedMs = validateMs(playedUpToMs, "playedUpToMs");
    this.link.sendControl({ $case: "playback", value: { playedUpToMs: this.lastPlayedMs } });
  }

  /** Barge-in: the server rewinds output after `playedUpToMs` (default: the last acked playback). */
  interrupt(playedUpToMs?: number): void {
    this.assertOpen("interrupt");
    const played = playedUpToMs === undefined ? this.lastPlayedMs : validateMs(playedUpToMs, "playedUpToMs");
    this.link.sendControl({ $case: "interrupt", value: { playedUpToMs: played } });
  }

  /** Asks the background model to work on `task`; the handle is awaitable for the final result. */
  delegate(task: string, options: DelegateOptions = {}): BackgroundTask {
    this.assertOpen("delegate");
    if (typeof task !== "string" || task.trim() === "") throw new InvalidInputError("delegate expects a non-empty task");
    throwIfAborted(options.signal, "delegate");
    const taskId = options.taskId ?? randomId();
    if (this.tasks.has(taskId)) throw new InvalidInputError(`task id ${taskId} is already in use in this session`);
    const timeoutMs = options.timeoutMs === undefined ? 0 : validateMs(options.timeoutMs, "timeoutMs");
    const delivery = deliveryMode(options.delivery);
    const handle = new BackgroundTask(taskId, task, (id) => this.cancelTask(id));
    this.tasks.set(taskId, handle);
    // A finished task is the caller's to keep: a long session that delegates often must not hold every result.
    const release = (): void => {
      if (this.tasks.get(taskId) === handle) this.tasks.delete(taskId);
    };
    handle.result.then(release, release);
    this.link.sendControl({ $case: "delegate", value: { taskId, task, delivery, timeoutMs } });
    const signal = options.signal;
    if (signal) {
      const onAbort = (): void => {
        if (handle.done) return;
        // Runs inside the signal's dispatch: a session already closing cannot take the cancel, and must not throw here.
        try {
          if (!this.closed) this.link.sendControl({ $case: "cancelTask", value: { taskId } });
        } catch {
          // The session is ending; the task ends with it.
        }
        handle.fail(new AbortError(`task ${taskId} was aborted`, { cause: signal.reason }));
      };
      signal.addEventListener("abort", onAbort, { once: true });
      handle.result.finally(() => signal.removeEventListener("abort", onAbort)).catch(() => undefined);
    }
    return handle;
  }

  /** Cancels a background task (one this client delegated, or one the model started). */
  cancelTask(taskId: string): void {
    this.assertOpen("cancelTask");
    if (typeof taskId !== "string" || taskId === "") throw new InvalidInputError("cancelTask expects a task id");
    this.link.sendControl({ $case: "cancelTask", value: { taskId } });
  }

  /** Answers a tool call by hand (for tools without a registered handler). */
  sendToolResult(result: ToolResult): void {
    this.assertOpen("sendToolResult");
    this.link.sendControl({ $case: "toolResult", value: result });
  }

  /** Ends the session: pending input is sent, SessionEnd goes out, and the server's SessionEnded is awaited. */
  async close(options: { reason?: string; signal?: AbortSignal; timeoutMs?: number } = {}): Promise<void> {
    if (this.closed) return;
    // A second call while the first waits for SessionEnded resolves with the first (its options are the first's).
    this.closing ??= this.closeOnce(options);
    return this.closing;
  }

  private async closeOnce(options: { reason?: string; signal?: AbortSignal; timeoutMs?: number }): Promise<void> {
    this.clock?.stop();
    if (this.link.state === "open") this.sendPendingInput();
    await this.link.end(options.reason ?? "client closed", options.timeoutMs ?? this.closeTimeoutMs, options.signal);
  }

  /** Every event from now until the session closes. */
  events(): AsyncIterableIterator<SessionEvent> {
    return this.subscribe(true);
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<SessionEvent> {
    return this.events();
  }

  /** Text deltas of the output, until the session closes. */
  async *text(): AsyncGenerator<string> {
    for await (const event of this.subscribe(false)) {
      if (event.type === "output" && event.data.text !== "") yield event.data.text;
    }
  }

  /** Output audio, until the session closes. */
  async *audio(): AsyncGenerator<OutputAudio> {
    for await (const event of this.subscribe(false)) {
      const pcm = event.type === "output" ? event.data.audio : undefined;
      if (event.type === "output" && pcm && pcm.pcm16.length > 0) {
        yield { samples: bytesToInt16(pcm.pcm16), sampleRateHz: pcm.sampleRateHz, startMs: event.data.startMs, seq: event.data.seq };
      }
    }
  }

  /** An iterator over the events from now on; `readsToolCalls`: its reader sees toolCall events (see answerToolCall). */
  private subscribe(readsToolCalls: boolean): AsyncQueue<SessionEvent> {
    const queue: AsyncQueue<SessionEvent> = new AsyncQueue(() => {
      this.iterators.delete(queue);
      this.eventReaders.delete(queue);
    });
    if (this.closed) {
      queue.end(this.closeError);
    } else {
      this.iterators.add(queue);
      if (readsToolCalls) this.eventReaders.add(queue);
    }
    return queue;
  }

  private tick(): void {
    if (this.link.state !== "open" && this.link.state !== "reconnecting") return;
    try {
      this.flushChunk();
    } catch (error) {
      this.dispatch("error", error as MicroturnError);
    }
  }

  /**
   * The input ends here: what the resampler held back joins the pending audio, and chunks are cut until none is left
   * (each takes one chunk of audio; the resend buffer's limit bounds how many go).
   */
  private sendPendingInput(): void {
    try {
      for (const resampler of this.resamplers.values()) this.framer.addAudio(resampler.flush());
      this.resamplers.clear();
      while (this.hasPendingInput()) this.flushChunk();
    } catch {
      // A full resend buffer (or pending-audio limit) loses what is left; closing still proceeds.
    }
  }

  private hasPendingInput(): boolean {
    return this.framer.pendingAudioMs > 0 || this.framer.hasPendingContent();
  }

  private assertOpen(call: string): void {
    if (this.closed || this.link.state === "closing" || this.link.state === "closed") {
      throw new SessionClosedError(`${call}() called on a closed session`);
    }
    if (this.link.state === "idle" || this.link.state === "connecting") {
      throw new SessionClosedError(`${call}() called before connect() resolved`);
    }
  }

  private onServerEvent(event: ServerEvent, typedError: SessionAPIError | undefined): void {
    const body = event.event;
    if (!body) return;
    const meta = { eventSeq: event.eventSeq };
    switch (body.$case) {
      case "error": {
        const error = typedError ?? errorFromSessionError(body.value, { sessionId: this.id });
        this.emittedErrors.add(error);
        return this.dispatch("error", error);
      }
      case "started":
        this.started = body.value;
        return this.dispatch("started", body.value, meta);
      case "toolCall":
        this.dispatch("toolCall", body.value, meta);
        return this.answerToolCall(body.value);
      case "background":
        this.tasks.get(body.value.taskId)?.apply(body.value);
        return this.dispatch("background", body.value, meta);
      default:
        return this.dispatch(body.$case, body.value as never, meta);
    }
  }

  /**
   * Runs the call's handler; a call with none is left to the app when it can see the call (a toolCall listener, or an
   * iterator over every event), and answered "unknown tool" otherwise, so the model does not wait out the deadline.
   */
  private answerToolCall(call: Parameters<ToolRunner["run"]>[0]): void {
    const appSeesCall = this.listenerCount("toolCall") > 0 || this.eventReaders.size > 0;
    if (!this.runner.has(call.name) && appSeesCall) return;
    void this.runner.run(call).then((result) => {
      if (!this.closed && this.link.state !== "closing") this.link.sendControl({ $case: "toolResult", value: result });
    });
  }

  private onLinkClosed(error: MicroturnError | undefined, emitError = true): void {
    if (this.closed) return;
    this.closed = true;
    this.closeError = error;
    this.clock?.stop();
    this.runner.abortAll();
    for (const task of this.tasks.values()) task.fail(error ?? new SessionClosedError(`session closed before task ${task.id} finished`));
    // An in-stream error the app already heard of as an event is not told twice; one that only ended the link
    // (a resume the server refused, say) is.
    const alreadyEmitted = error !== undefined && this.emittedErrors.has(error);
    if (error && emitError && !alreadyEmitted) this.dispatch("error", error);
    this.dispatch("close", { error });
    for (const queue of this.iterators) queue.end(error);
    this.iterators.clear();
    this.eventReaders.clear();
  }

  private dispatch<K extends keyof SessionEvents>(type: K, ...args: SessionEvents[K]): void {
    const event = { type, data: args[0] } as SessionEvent;
    for (const queue of this.iterators) queue.push(event);
    (this.emit as (type: K, ...args: SessionEvents[K]) => boolean)(type, ...args);
  }
}

function randomId(): string {
  const bytes = new Uint8Array(12);
  globalThis.crypto.getRandomValues(bytes);
  return `task_${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

function validateToolName(name: unknown): string {
  if (typeof name !== "string" || name.trim() === "") throw new InvalidInputError("requireToolCall expects a tool name");
  return name;
}
