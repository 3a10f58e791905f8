// One interaction session's micro-turn loop (ARCHITECTURE.md section 2): input
// chunks in seq order, one micro-turn in flight, output tied to the seq it
// answers, background and tool results woven in at boundaries, barge-in rewind.
import {
  ContextSource,
  DeliveryMode,
  ErrorCode,
  FinishReason,
  TaskStatus,
  type BackgroundUpdate,
  type ContextItem,
  type InputChunk,
  type SessionConfig,
  type SessionMetrics,
  type ToolSpec,
} from "@microturn/protocol";
import type { EngineCapabilities, EngineChunk, EngineSession } from "../engines/engine.js";
import { BackgroundError } from "../background/errors.js";
import { SessionFault, toSessionError } from "../errors.js";
import { ConversationLog } from "./conversation-log.js";
import { ContextDeliveries, resolveDelivery, type ContextScript, type PendingDelivery } from "./context-deliveries.js";
import { EngineInput, type InputMedia } from "./engine-input.js";
import { EngineSequence, TurnFailed, type TurnOutput } from "./engine-sequence.js";
import { validateInputChunk } from "./input-validation.js";
import type { ConversationEntry, MovedTaskState, PendingCallState, ServerPayload, SessionBackground, SessionTools } from "./ports.js";
import { SessionStats, type SessionMetricsContext } from "./session-stats.js";
import { SessionToolCalls } from "./session-tool-calls.js";
import { Speech } from "./speech.js";
import { TEXT_MS_PER_CHAR, TurnHistory } from "./turn-history.js";
import { waitAtMost } from "../timers.js";


export interface SessionLimits {
  /** Output tokens per micro-turn for a session whose config asks for none. */
  maxOutputTokensPerTurn: number;
  /** The most a session's config may ask for; absent or 0: maxOutputTokensPerTurn. */
  maxOutputTokensCeiling?: number;
  maxQueuedChunks: number;
  /** KV capacity asked of the engine per session, tokens; 0 or absent takes the engine's default. */
  sessionTokens?: number;
  /** How far back in input time a barge-in can cut (the input kept for re-append); absent: 10 s. */
  rewindHorizonMs?: number;
}

export interface SessionObserver {
  turn?(sample: { appendMs: number; turnMs: number; inputMs: number; queueLagMs: number }): void;
  error?(code: ErrorCode): void;
  rollover?(sample: { sessionId: string; fromTokens: number; toTokens: number; carriedLines: number }): void;
  playback?(sample: { lagMs: number }): void;
}

export interface InteractionSessionOptions {
  id: string;
  engineSession: EngineSession;
  /** Every tool announced to the model (client, server, delegate): what tool_choice may name. */
  toolSpecs?: readonly ToolSpec[];
  /** The engine session's system prompt; a rollover starts the new one with it. */
  systemPrompt?: string;
  /**
   * Opens a fresh engine session with this system prompt, for when the current
   * sequence reaches its capacity. Without it a full session answers TOO_LARGE.
   */
  reopen?: (systemPrompt: string) => Promise<EngineSession>;
  capabilities: EngineCapabilities;
  config: SessionConfig;
  /** Whether and how the session speaks; made from config and capabilities when not given. */
  speech?: Speech;
  limits: SessionLimits;
  emit: (event: ServerPayload) => void;
  media?: InputMedia;
  background?: SessionBackground;
  tools?: SessionTools;
  observer?: SessionObserver;
  /** Wall clock for latency figures; the loop itself runs on input time. */
  now?: () => number;
  /**
   * The session moved here from another sidecar: its state so far. The engine
   * session given then carries the conversation in its system prompt, and
   * `promptTokens` is the system prompt alone.
   */
  moved?: MovedSession;
  promptTokens?: number;
  /** What enters the model's context at each boundary, from a recording (microturn replay); absent: what arrives. */
  contextScript?: ContextScript;
  /** Hears what entered the model's context at a boundary (the session's recording keeps it for replay). */
  onContext?: (seq: number, items: readonly ContextItem[]) => void;
}

/**
 * What of a session moves with it to another sidecar (handoff.proto's
 * SessionSnapshot, less what the hub keeps: id, config, events). The model's
 * sequence does not move: the taker's engine session carries the conversation.
 */
export interface MovedSession {
  nextSeq: number;
  inputTimeMs: number;
  chunks: number;
  conversation: ConversationEntry[];
  /** Results waiting for a boundary, a server tool cut short by the move among them. */
  pending: PendingDelivery[];
  pendingCalls: PendingCallState[];
  callsMade: number;
  tasks: MovedTaskState[];
  taskIdsMade: number;
  playedUpToMs: number;
  outputEndMs: number;
  /** Chunks acknowledged and not yet answered: they run on the taker. */
  queuedInput: InputChunk[];
}


type QueueItem =
  | { kind: "chunk"; chunk: InputChunk; arrivedAt: number; forceTool: ToolSpec | undefined }
  | { kind: "interrupt"; playedUpToMs: number }
  | { kind: "playback"; playedUpToMs: number };

export class InteractionSession {
  readonly id: string;
  /** The options less the first engine session: the sequence holds that, and lets it go at a rollover. */
  private readonly opts: Omit<InteractionSessionOptions, "engineSession">;
  private readonly queue: QueueItem[] = [];
  private readonly history: TurnHistory;
  private readonly deliveries: ContextDeliveries;
  private readonly conversation = new ConversationLog();
  private readonly input: EngineInput;
  private readonly speech: Speech;
  private readonly toolCalls: SessionToolCalls;
  private readonly stats = new SessionStats();
  private readonly now: () => number;
  private readonly sequence: EngineSequence;
  private nextSeq = 0;
  private running = false;
  private closed = false;
  /** Input time reached so far (end of the last chunk taken). */
  private inputTimeMs = 0;
  /** start_ms of the last chunk taken: input time does not go back (here; a moved session starts afresh). */
  private lastStartMs = -Infinity;
  /** Made only when someone waits for the queue to drain (end, close): most turns need none. */
  private idle: Promise<void> | undefined;
  /** Aborts the micro-turn in flight when the session closes (a hung engine must not hold the end). */
  private readonly aborter = new AbortController();
  private resolveIdle: (() => void) | undefined;
  /** The chunk whose micro-turn is running. */
  private turnChunk: InputChunk | undefined;
  /** Set once the session moved to another sidecar: nothing more reaches its client from here. */
  private released = false;
  /** close()'s work once begun: a second close waits for the same. */
  private closing: Promise<void> | undefined;
  /** The results the running micro-turn took at its boundary, until it settles them. */
  private turnTaken: readonly PendingDelivery[] = [];
  /** The results the turn being set up took at its boundary (takeDeliveries), for runTurn to settle. */
  private taken: PendingDelivery[] = [];
  /**
   * Results already in the conversation log, with their line: one given back by a failed turn is not logged
   * twice, and a rollover does not carry the line of a result the turn appends itself.
   */
  private readonly loggedContext = new WeakMap<ContextItem, ConversationEntry>();

  constructor({ engineSession, ...options }: InteractionSessionOptions) {
    this.opts = { ...options, emit: (event) => this.released || options.emit(event) };
    this.id = options.id;
    this.now = options.now ?? (() => performance.now());
    this.history = new TurnHistory(options.limits.rewindHorizonMs);
    this.deliveries = new ContextDeliveries(options.contextScript);
    this.sequence = new EngineSequence({
      session: engineSession,
      systemPrompt: options.systemPrompt ?? "",
      supportsRewind: options.capabilities.supportsRewind,
      ...(options.reopen ? { reopen: options.reopen } : {}),
      ...(options.promptTokens !== undefined ? { promptTokens: options.promptTokens } : {}),
      onRollover: (sample) => {
        // Positions restart and earlier output can no longer be rewound; clients hear of it at once.
        this.history.reset();
        this.speech.reset();
        this.toolCalls.abandonCall(this.nextSeq - 1, "the sequence rolled over before it closed");
        this.opts.observer?.rollover?.({ sessionId: this.id, ...sample });
        this.sendMetrics();
      },
    });
    this.speech = options.speech ?? new Speech(options.config, options.capabilities);
    const reportError = (err: unknown, context: { seq?: number }) => this.reportError(err, context);
    this.input = new EngineInput({ capabilities: options.capabilities, config: options.config, media: options.media, reportError, takeDeliveries: (chunk) => this.takeDeliveries(chunk) });
    this.toolCalls = new SessionToolCalls({
      capabilities: options.capabilities,
      config: options.config,
      toolSpecs: options.toolSpecs,
      tools: options.tools,
      background: () => this.requireBackground(),
      conversation: () => this.conversation.lines,
      deliveries: this.deliveries,
      inputTimeMs: () => this.inputTimeMs,
      emit: this.opts.emit,
      reportError,
    });
    options.background?.onUpdate((update) => this.onBackgroundUpdate(update));
    if (options.moved) this.restore(options.moved);
  }

  /** The state of a session that moved here; what runs (tool calls, tasks, queued turns) starts in `resumeMoved`. */
  private restore(moved: MovedSession): void {
    this.nextSeq = moved.nextSeq;
    this.inputTimeMs = moved.inputTimeMs;
    this.stats.restoreChunks(moved.chunks);
    for (const entry of moved.conversation) this.conversation.push(entry);
    this.deliveries.restore(moved.pending);
    this.history.restoreTiming(moved.outputEndMs, moved.playedUpToMs);
  }

  /**
   * Once the client's stream is attached: waits for the client tool calls made
   * before the move, runs the unfinished background tasks again, and runs the
   * micro-turns of the chunks that were acknowledged and not answered.
   */
  resumeMoved(moved: MovedSession): void {
    this.toolCalls.adopt(moved.callsMade, moved.pendingCalls);
    this.opts.background?.adopt(moved.taskIdsMade, moved.tasks, this.conversation.snapshot());
    for (const chunk of moved.queuedInput) {
      try {
        this.queue.push({ kind: "chunk", chunk, arrivedAt: this.now(), forceTool: chunk.toolChoice ? this.toolCalls.forcedTool(chunk) : undefined });
      } catch (err) {
        this.reportError(err, { seq: chunk.seq });
      }
    }
    if (this.queue.length > 0) this.kick();
  }

  /**
   * The session moves to another sidecar (its client resumed there). Waits up
   * to `waitMs` for the queued micro-turns, then stops without another event
   * to the client (the taker speaks to it from now on) and returns what moves:
   * a turn still running is cut and goes along with the chunks behind it, and
   * a server tool still running goes along as an error result.
   */
  async release(waitMs: number): Promise<MovedSession> {
    await waitAtMost(this.whenIdle(), waitMs);
    this.released = true;
    const queuedInput: InputChunk[] = this.turnChunk ? [this.turnChunk] : [];
    for (const item of this.queue) {
      if (item.kind === "chunk") queuedInput.push(item.chunk);
      else if (item.kind === "playback") this.notePlayed(item.playedUpToMs);
    }
    const rerun = new Set(queuedInput.map((chunk) => chunk.seq));
    // The results the cut turn took run again with it on the taker, first in line; their lines here are not carried.
    const cut = this.turnChunk ? this.turnTaken : [];
    const cutLines = new Set(cut.flatMap((p) => this.loggedContext.get(p.item) ?? []));
    const tools = this.toolCalls.release();
    for (const name of tools.interrupted) this.deliveries.addToolResult(name, "error: cut short when the session moved to another sidecar; call it again if still needed", this.inputTimeMs);
    const moved: MovedSession = {
      nextSeq: this.nextSeq,
      inputTimeMs: this.inputTimeMs,
      chunks: this.stats.chunks,
      // A chunk that runs again on the taker logs its input again there.
      conversation: this.conversation.filter((entry) => !(entry.role === "user" && entry.seq !== undefined && rerun.has(entry.seq)) && !cutLines.has(entry)),
      pending: [...cut.map((p) => ({ ...p })), ...this.deliveries.waiting()],
      pendingCalls: tools.pendingCalls,
      callsMade: tools.callsMade,
      taskIdsMade: this.opts.background?.idsMade ?? 0,
      tasks: this.opts.background?.release() ?? [],
      playedUpToMs: this.history.playedUpToMs,
      outputEndMs: this.history.outputEndMs,
      queuedInput,
    };
    await this.close();
    return moved;
  }

  /** The next input seq expected. */
  get expectedSeq(): number {
    return this.nextSeq;
  }

  get positionTokens(): number {
    return this.sequence.positionTokens;
  }

  /** Takes one input chunk: validates, orders by seq, queues, acks. Never throws. */
  acceptInput(chunk: InputChunk, eventId = ""): void {
    try {
      if (this.closed) throw new SessionFault(ErrorCode.ERROR_CODE_FAILED_PRECONDITION, "session is closed", { seq: chunk.seq, fatal: true });
      if (chunk.seq < this.nextSeq) {
        this.opts.emit({ $case: "inputAck", value: { seq: chunk.seq, duplicate: true, queueDepth: this.queue.length } });
        return;
      }
      if (chunk.seq > this.nextSeq) {
        throw new SessionFault(ErrorCode.ERROR_CODE_SEQ_GAP, `input seq ${chunk.seq} skips ahead; expected ${this.nextSeq}: resend from ${this.nextSeq}`, {
          seq: this.nextSeq,
          retryable: true,
        });
      }
      validateInputChunk(chunk);
      if (chunk.startMs < this.lastStartMs) {
        // Output is timed from input time: a chunk back in time would make the listener seem far behind, muting the model.
        throw new SessionFault(
          ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
          `input seq ${chunk.seq}: start_ms ${chunk.startMs} is before the previous chunk's (${this.lastStartMs}); input time only moves on`,
          { seq: chunk.seq },
        );
      }
      const forceTool = chunk.toolChoice ? this.toolCalls.forcedTool(chunk) : undefined;
      if (this.queuedChunks() >= this.opts.limits.maxQueuedChunks) {
        throw new SessionFault(
          ErrorCode.ERROR_CODE_QUEUE_FULL,
          `input queue full (${this.opts.limits.maxQueuedChunks} chunks, ${this.queueLagMs()} ms behind): the engine is slower than real time; resend seq ${chunk.seq} later`,
          { seq: chunk.seq, retryable: true },
        );
      }
      this.nextSeq = chunk.seq + 1;
      this.lastStartMs = chunk.startMs;
      this.inputTimeMs = chunk.startMs + chunk.durationMs;
      this.queue.push({ kind: "chunk", chunk, arrivedAt: this.now(), forceTool });
      this.opts.emit({ $case: "inputAck", value: { seq: chunk.seq, duplicate: false, queueDepth: this.queue.length - 1 } });
      this.kick();
    } catch (err) {
      this.reportError(err, { seq: chunk.seq, eventId });
    }
  }

  /**
   * The client played output up to here: the floor of any later barge-in; also
   * gives the playback lag. Queued in order with chunks and interrupts, so a
   * replay meets it at the same point of the loop.
   */
  playbackAck(playedUpToMs: number): void {
    this.queue.push({ kind: "playback", playedUpToMs });
    this.kick();
  }

  /** Barge-in: queued behind earlier chunks so the cut lands between micro-turns. */
  interrupt(playedUpToMs: number): void {
    this.queue.push({ kind: "interrupt", playedUpToMs });
    this.kick();
  }

  /** Starts a background task asked for by the client. */
  delegate(task: string, delivery: DeliveryMode, options: { taskId?: string; timeoutMs?: number } = {}): void {
    try {
      const background = this.requireBackground();
      if (!task.trim()) throw new SessionFault(ErrorCode.ERROR_CODE_INVALID_ARGUMENT, "delegate: task is empty");
      background.start({
        ...(options.taskId ? { taskId: options.taskId } : {}),
        ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}),
        task,
        delivery: resolveDelivery(delivery, this.opts.config.defaultDelivery),
        fromModel: false,
        conversation: this.conversation.snapshot(),
      });
    } catch (err) {
      // The task fails as a task too, so a client waiting on its id hears why (a full queue included); not when the
      // id is one already running, whose own updates follow.
      if (options.taskId && !idInUse(err)) {
        const update = { taskId: options.taskId, status: TaskStatus.TASK_STATUS_FAILED, content: "", delivery, errorMessage: (err as Error).message, deliveredAtSeq: 0, fromModel: false, task };
        this.opts.emit({ $case: "background", value: update });
      }
      throw err;
    }
  }

  cancelTask(taskId: string): void {
    this.requireBackground().cancel(taskId);
  }

  toolResult(callId: string, outputJson: string, isError: boolean): void {
    this.toolCalls.toolResult(callId, outputJson, isError);
  }

  /** Resolves once every queued item has been processed. */
  whenIdle(): Promise<void> {
    if (!this.running) return Promise.resolve();
    this.idle ??= new Promise((resolve) => (this.resolveIdle = resolve));
    return this.idle;
  }

  metrics(): SessionMetrics {
    return this.stats.snapshot(this.metricsContext());
  }

  get chunkCount(): number {
    return this.stats.chunks;
  }

  /**
   * Stops the session's work: no further micro-turn, the one running cut, its
   * background tasks and tool calls cancelled (their CANCELLED updates go out
   * now, ahead of a SessionEnded). close() does this first.
   */
  stop(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue.length = 0;
    this.aborter.abort();
    this.opts.background?.cancelAll();
    this.opts.tools?.cancelAll();
  }

  async close(): Promise<void> {
    this.stop();
    this.closing ??= this.whenIdle().then(() => this.sequence.close());
    await this.closing;
  }

  private queuedChunks(): number {
    return this.queue.reduce((n, item) => n + (item.kind === "chunk" ? 1 : 0), 0);
  }

  private queueLagMs(): number {
    return this.queue.reduce((ms, item) => ms + (item.kind === "chunk" ? item.chunk.durationMs : 0), 0);
  }

  private requireBackground(): SessionBackground {
    if (!this.opts.background) {
      throw new SessionFault(ErrorCode.ERROR_CODE_BACKGROUND_UNAVAILABLE, "no background model is configured on this sidecar (--background)");
    }
    return this.opts.background;
  }

  private reportError(err: unknown, context: { seq?: number; eventId?: string }): void {
    const error = toSessionError(err, context);
    this.opts.observer?.error?.(error.code);
    this.opts.emit({ $case: "error", value: error });
  }

  private kick(): void {
    if (this.running) return;
    this.running = true;
    void this.drain();
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0 && !this.closed) {
        const item = this.queue.shift()!;
        try {
          if (item.kind === "chunk") {
            this.turnChunk = item.chunk;
            await this.runTurn(item.chunk, item.arrivedAt, item.forceTool);
          } else if (item.kind === "interrupt") await this.rewindTo(item.playedUpToMs);
          else this.notePlayed(item.playedUpToMs);
        } catch (err) {
          // A turn cut short by the session's close is not news to anyone.
          if (!this.closed) this.reportError(err, item.kind === "chunk" ? { seq: item.chunk.seq } : {});
        } finally {
          this.turnChunk = undefined;
          this.turnTaken = [];
        }
      }
    } finally {
      this.running = false;
      const resolve = this.resolveIdle;
      this.idle = this.resolveIdle = undefined;
      resolve?.();
    }
  }

  private async runTurn(chunk: InputChunk, arrivedAt: number, forceTool: ToolSpec | undefined): Promise<void> {
    const engineChunk = this.input.toEngineChunk(chunk);
    const taken = this.taken;
    this.taken = [];
    this.turnTaken = taken;
    this.logInput(engineChunk);
    const start = this.now();
    const maxOutputTokens = this.outputBudget(chunk);
    const signal = this.aborter.signal;
    const options = forceTool ? { maxOutputTokens, signal, forceTool: { name: forceTool.name, parametersJson: forceTool.parametersJson } } : { maxOutputTokens, signal };
    const restoreToolCalls = this.toolCalls.checkpoint();
    let turn: TurnOutput;
    try {
      turn = await this.sequence.turn(
        engineChunk,
        options,
        () => this.carriedConversation(engineChunk),
        // Output after the session closed reaches nobody, and a call in it must not start work nothing would cancel.
        (delta) => (this.closed ? "" : this.toolCalls.visibleText(delta, chunk.seq)),
      );
    } catch (err) {
      // The results reached the model if the input went in (the sequence moved on, or the answer was taken back
      // and the input appended again); else they wait for the next boundary.
      const inputIn = (err instanceof TurnFailed && err.recovered !== undefined) || this.sequence.lastInputTaken;
      if (!this.closed) this.settleContext(chunk.seq, taken, inputIn);
      if (!(err instanceof TurnFailed)) throw err;
      if (err.recovered && !this.closed) {
        // The answer was taken back out of the engine: the parser goes back with it, and the turn stays in
        // the history as a silent one, so a later barge-in's rewind re-appends its input like any other. (A
        // call that closed inside the lost answer has started all the same; its result comes as context.)
        restoreToolCalls();
        const { inputStart, inputEnd } = err.recovered;
        this.recordTurn(chunk, engineChunk, { inputStart, inputEnd, outputEnd: inputEnd }, { text: "", startMs: this.history.nextOutputStart(chunk), durationMs: 0 });
      }
      throw err.cause;
    }
    const { result, audio } = turn;
    // The session closed while the engine answered: SessionEnded has gone out, nothing follows it.
    if (this.closed) return;
    this.settleContext(chunk.seq, taken, true);
    // The model yielded the turn (not its budget spent): text a settled call held back is this turn's.
    const utteranceEnded = result.finishReason === FinishReason.FINISH_REASON_STOP || result.finishReason === FinishReason.FINISH_REASON_SILENT;
    const text = turn.text + this.toolCalls.endTurn(chunk.seq, utteranceEnded);
    const turnMs = this.now() - start;
    const latencyMs = this.now() - arrivedAt;
    const spoken = this.speech.output(audio);
    const silent = text.length === 0 && !spoken;
    const outputStartMs = this.history.nextOutputStart(chunk);
    // Output time is what the listener hears: the audio when the session speaks, else text at a reading pace.
    const outputDurationMs = spoken ? spoken.durationMs : silent ? 0 : text.length * TEXT_MS_PER_CHAR;
    this.recordTurn(chunk, engineChunk, result, { text, startMs: outputStartMs, durationMs: outputDurationMs });
    this.stats.recordTurn({ latencyMs, turnMs, appendMs: result.appendMs, inputMs: chunk.durationMs });
    this.opts.observer?.turn?.({ appendMs: result.appendMs, turnMs, inputMs: chunk.durationMs, queueLagMs: this.queueLagMs() });
    if (text) this.conversation.push({ role: "assistant", text, startMs: outputStartMs, seq: chunk.seq });
    this.opts.emit({
      $case: "output",
      value: {
        seq: chunk.seq,
        startMs: outputStartMs,
        durationMs: outputDurationMs,
        text,
        audio: spoken?.audio,
        silent,
        latencyMs,
        finishReason: silent ? FinishReason.FINISH_REASON_SILENT : result.finishReason,
      },
    });
    if (this.stats.due) this.sendMetrics();
  }

  /**
   * The results a micro-turn took at its boundary, once it is known whether
   * they reached the model: then the client hears each background result
   * delivered and the recording keeps them; else they wait for the next
   * boundary, first in line (a turn that failed before its input went in).
   */
  private settleContext(seq: number, taken: readonly PendingDelivery[], reached: boolean): void {
    if (taken.length === 0) return;
    if (!reached) {
      this.deliveries.giveBack(taken);
      return;
    }
    for (const p of taken) if (p.update) this.opts.emit({ $case: "background", value: { ...p.update, content: "", deliveredAtSeq: seq } });
    this.opts.onContext?.(seq, taken.map((p) => p.item));
  }

  /** A micro-turn in the history: where its input and output sit in the engine, and when its output is heard. */
  private recordTurn(
    chunk: InputChunk,
    engineChunk: EngineChunk,
    at: { inputStart: number; inputEnd: number; outputEnd: number },
    output: { text: string; startMs: number; durationMs: number },
  ): void {
    this.history.record({
      seq: chunk.seq,
      // Its context goes back in with its input on a barge-in's re-append: the model keeps the results it was given.
      chunk: engineChunk,
      inputStartTokens: at.inputStart,
      inputEndTokens: at.inputEnd,
      outputEndTokens: at.outputEnd,
      outputText: output.text,
      outputStartMs: output.startMs,
      outputDurationMs: output.durationMs,
    });
  }

  /** Background tasks of this session running now. */
  get backgroundTasks(): number {
    return this.opts.background?.running ?? 0;
  }

  private sendMetrics(): void {
    this.opts.emit({ $case: "metrics", value: this.stats.take(this.metricsContext()) });
  }

  private metricsContext(): SessionMetricsContext {
    return { queueLagMs: this.queueLagMs(), positionTokens: this.positionTokens, backgroundTasks: this.backgroundTasks, contextRollovers: this.sequence.rollovers };
  }

  /**
   * Output is paced to real time: while more than one chunk of earlier output
   * is still to be played when this chunk ends, the micro-turn appends input
   * only (the model is still speaking), so output never runs ahead of the
   * listener by more than a micro-turn.
   */
  private outputBudget(chunk: InputChunk): number {
    if (this.history.pendingOutputMs(chunk.startMs + chunk.durationMs) > chunk.durationMs) return 0;
    return this.outputTokensPerTurn;
  }

  /** The session's output budget per micro-turn: what its config asked for, cut to the ceiling, or the default. */
  get outputTokensPerTurn(): number {
    const { maxOutputTokensPerTurn: fallback, maxOutputTokensCeiling } = this.opts.limits;
    return Math.min(this.opts.config.maxOutputTokensPerTurn || fallback, maxOutputTokensCeiling || fallback);
  }

  private onBackgroundUpdate(update: BackgroundUpdate): void {
    // The client hears of a task as it goes; a final result also waits for a
    // fitting boundary, and the client hears again when it is delivered.
    this.opts.emit({ $case: "background", value: update });
    const final = [TaskStatus.TASK_STATUS_DONE, TaskStatus.TASK_STATUS_FAILED, TaskStatus.TASK_STATUS_TIMED_OUT].includes(update.status);
    if (final) this.deliveries.addBackgroundResult(update, resolveDelivery(update.delivery, this.opts.config.defaultDelivery), this.inputTimeMs);
  }

  /** Context whose delivery mode allows it at this boundary; the turn settles it (settleContext). */
  private takeDeliveries(chunk: InputChunk): ContextItem[] {
    const boundary = {
      seq: chunk.seq,
      startMs: chunk.startMs,
      userActive: chunk.userSpeaking || chunk.text.trim() !== "",
      modelSpeaking: this.history.pendingOutputMs(chunk.startMs) > 0,
    };
    this.taken = this.deliveries.take(boundary);
    return this.taken.map((p) => p.item);
  }

  /** Logged before generation, so a task delegated during this turn's output sees its input. */
  private logInput(engineChunk: EngineChunk): void {
    for (const item of engineChunk.context ?? []) {
      // A result given back by a failed turn was logged when that turn took it.
      if (this.loggedContext.has(item)) continue;
      const entry: ConversationEntry = { role: item.source === ContextSource.CONTEXT_SOURCE_TOOL ? "tool" : "background", text: item.text, startMs: engineChunk.startMs, seq: engineChunk.seq };
      this.loggedContext.set(item, entry);
      this.conversation.push(entry);
    }
    if (engineChunk.text) this.conversation.push({ role: "user", text: engineChunk.text, startMs: engineChunk.startMs, seq: engineChunk.seq });
  }

  /**
   * What a rollover during this turn carries: the conversation without the turn's own input, which is appended
   * after it. That input includes the results it delivers, also those a failed earlier turn gave back and logged
   * under its own seq (carried as well, the model would read them twice).
   */
  private carriedConversation(engineChunk: EngineChunk): ConversationEntry[] {
    const own = new Set<ConversationEntry>();
    for (const item of engineChunk.context ?? []) {
      const entry = this.loggedContext.get(item);
      if (entry) own.add(entry);
    }
    return this.conversation.filter((entry) => entry.seq !== engineChunk.seq && !own.has(entry));
  }

  private notePlayed(playedUpToMs: number): void {
    if (playedUpToMs < this.history.playedUpToMs) return; // stale: a later ack already said more
    this.history.notePlayed(playedUpToMs);
    this.stats.playbackLagMs = Math.max(0, Math.round(this.history.outputEndMs - playedUpToMs));
    this.opts.observer?.playback?.({ lagMs: this.stats.playbackLagMs });
  }

  private async rewindTo(reportedMs: number): Promise<void> {
    // What an earlier playback ack confirmed was heard stays, whatever the interrupt says.
    const playedUpToMs = Math.max(reportedMs, this.history.playedUpToMs);
    const plan = this.history.planRewind(playedUpToMs);
    if (!plan) return;
    if (!this.opts.capabilities.supportsRewind) {
      throw new SessionFault(ErrorCode.ERROR_CODE_FAILED_PRECONDITION, `engine ${this.opts.capabilities.engine} cannot rewind; unheard output stays in the model's memory`);
    }
    const positions = await this.sequence.rewind(plan.positionTokens, plan.reappend);
    // A call cut in the middle is gone from the model's memory with the rest of the unheard output.
    this.toolCalls.abandonCall(this.nextSeq - 1, "cut by the user's barge-in");
    this.history.applyRewind(plan, playedUpToMs, positions);
    this.speech.reset();
    this.conversation.push({ role: "system", text: `[user interrupted at ${(playedUpToMs / 1000).toFixed(1)}s; unheard: "${plan.droppedText}"]`, startMs: playedUpToMs });
  }
}

/** A delegation refused because its task id is one already queued or running here (the adapter keeps the cause). */
function idInUse(err: unknown): boolean {
  const cause = err instanceof Error ? err.cause : undefined;
  return (BackgroundError.isInstance(err) && err.code === "already_exists") || (BackgroundError.isInstance(cause) && cause.code === "already_exists");
}
