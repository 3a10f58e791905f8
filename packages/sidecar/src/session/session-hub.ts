// Every live session of one sidecar: creation on SessionStart, lookup by
// resume token, the grace period of a dropped stream, and drain on shutdown.
import { randomBytes, randomUUID } from "node:crypto";
import { ErrorCode, PROTOCOL_VERSION, type SessionConfig, type SessionError, type SessionStarted, type ToolSpec } from "@microturn/protocol";
import type { Engine } from "../engines/engine.js";
import { SessionFault } from "../errors.js";
import type { Logger } from "../logger.js";
import type { InputMedia } from "./engine-input.js";
import { InteractionSession, type SessionLimits, type SessionObserver } from "./interaction-session.js";
import { Outbox, type EventSink, type OutboxOptions } from "./outbox.js";
import type { SessionBackground, SessionTools } from "./ports.js";
import { SessionRecorder } from "./session-recorder.js";
import { Speech } from "./speech.js";
import type { SpinWait } from "./spin-wait.js";
import { DELEGATE_TOOL_SPEC } from "../tools/delegate.js";
import { toolPromptSection } from "../tools/prompt.js";
import { timerMs, waitAtMost } from "../timers.js";

export interface SessionHubOptions {
  engine: Engine;
  limits: SessionLimits;
  maxSessions: number;
  resumeGraceMs: number;
  recordDir: string;
  logger: Logger;
  observer?: SessionObserver;
  createBackground?: (sessionId: string) => SessionBackground | undefined;
  createTools?: (sessionId: string, config: SessionConfig) => SessionTools | undefined;
  createMedia?: () => InputMedia | undefined;
  /** Tools the sidecar runs itself, announced to the model beside the client's. */
  serverTools?: ToolSpec[];
  /**
   * How long ending a session waits for its queued micro-turns before it cuts
   * them (the one in flight is aborted); default 10 s.
   */
  endWaitMs?: number;
  /** Wall clock, ms (how old a kept event is); performance.now by default. */
  now?: () => number;
  /** Keeps the loop awake when sessions' next chunks are due (spin-wait.ts); none: the loop sleeps. */
  spinWait?: SpinWait;
}

function recordingError(err: Error): SessionError {
  return {
    code: ErrorCode.ERROR_CODE_INTERNAL,
    message: `recording failed, the session goes on unrecorded: ${err.message}`,
    retryable: false,
    seq: 0,
    eventId: "",
    fatal: false,
  };
}

/** How long ending a session waits for its queued micro-turns by default. */
const END_WAIT_MS = 10_000;

/** Events an attached session keeps for resume at least this long (longer with a long grace period). */
const OUTBOX_KEEP_MS = 60_000;

/** A session and what outlives its streams. */
export class SessionHandle {
  readonly outbox: Outbox;
  graceTimer: NodeJS.Timeout | undefined;
  /** The stream that holds the session now; a resume on another stream supersedes it. */
  owner: { superseded(): void; sessionEnded(): void } | undefined;
  constructor(
    readonly session: InteractionSession,
    readonly resumeToken: string,
    readonly recorder: SessionRecorder | undefined,
    outbox: OutboxOptions = {},
  ) {
    this.outbox = new Outbox(outbox);
  }
}

export class SessionHub {
  private readonly byId = new Map<string, SessionHandle>();
  private readonly byToken = new Map<string, SessionHandle>();
  private draining = false;
  /** Sessions whose engine session is still opening. */
  private opening = 0;

  private readonly observer: SessionObserver;

  constructor(private readonly opts: SessionHubOptions) {
    const metrics = opts.observer;
    this.observer = {
      ...metrics,
      rollover: (sample) => {
        metrics?.rollover?.(sample);
        opts.logger.info("context rollover: the sequence reached its capacity; going on in a fresh engine session", {
          session: sample.sessionId,
          fromTokens: sample.fromTokens,
          toTokens: sample.toTokens,
          carriedLines: sample.carriedLines,
        });
      },
    };
  }

  get size(): number {
    return this.byId.size;
  }

  get resumeGraceMs(): number {
    return this.opts.resumeGraceMs;
  }

  sessions(): IterableIterator<SessionHandle> {
    return this.byId.values();
  }

  async create(config: SessionConfig, sink: EventSink): Promise<SessionHandle> {
    if (this.draining) throw new SessionFault(ErrorCode.ERROR_CODE_RESOURCE_EXHAUSTED, "sidecar is draining; connect to another one", { retryable: true, fatal: true });
    // Sessions still opening count: concurrent starts must not pass the cap together.
    if (this.byId.size + this.opening >= this.opts.maxSessions) {
      throw new SessionFault(ErrorCode.ERROR_CODE_RESOURCE_EXHAUSTED, `sidecar holds its maximum of ${this.opts.maxSessions} sessions`, { retryable: true, fatal: true });
    }
    this.opening++;
    try {
      return await this.open(config, sink);
    } finally {
      this.opening--;
    }
  }

  private async open(config: SessionConfig, sink: EventSink): Promise<SessionHandle> {
    // A config the engine cannot serve is refused before an engine session is opened for it.
    const speech = new Speech(config, this.opts.engine.capabilities);
    const id = randomUUID();
    const background = this.opts.createBackground?.(id);
    const tools = [...config.tools, ...(this.opts.serverTools ?? []), ...(background ? [DELEGATE_TOOL_SPEC] : [])];
    const systemPrompt = [config.instructions, toolPromptSection(tools)].filter(Boolean).join("\n\n");
    // What every engine session of this conversation is opened with, the ones after a rollover too.
    const engineOptions = {
      ...(this.opts.limits.sessionTokens ? { capacityTokens: this.opts.limits.sessionTokens } : {}),
      ...(speech.speaks ? { audioOutput: true } : {}),
    };
    const engineSession = await this.opts.engine.openSession({ sessionId: id, systemPrompt, ...engineOptions });
    const capacityTokens = engineSession.stats().capacityTokens;
    if (capacityTokens > 0 && engineSession.positionTokens > capacityTokens / 2) {
      this.opts.logger.warn("the system prompt takes over half of the session's capacity; raise --session-tokens or shorten instructions and tools", {
        session: id,
        promptTokens: engineSession.positionTokens,
        capacityTokens,
      });
    }
    const token = randomBytes(24).toString("base64url");
    let handle: SessionHandle | undefined;
    const recorder =
      config.record && this.opts.recordDir
        ? new SessionRecorder(this.opts.recordDir, id, (err) => {
            this.opts.logger.warn("recording failed; the session goes on unrecorded", { session: id, error: err.message });
            // A file that could not be opened fails before the session exists: the error follows its SessionStarted.
            const report = () => handle!.outbox.push({ $case: "error", value: recordingError(err) });
            if (handle) report();
            else queueMicrotask(report);
          })
        : undefined;
    let reopened = 0;
    const session = new InteractionSession({
      id,
      engineSession,
      systemPrompt,
      toolSpecs: tools,
      reopen: (prompt) => this.opts.engine.openSession({ sessionId: `${id}-r${++reopened}`, systemPrompt: prompt, ...engineOptions }),
      capabilities: this.opts.engine.capabilities,
      config,
      speech,
      limits: this.opts.limits,
      emit: (payload) => handle!.outbox.push(payload),
      media: this.opts.createMedia?.(),
      background,
      tools: this.opts.createTools?.(id, config),
      observer: this.observer,
    });
    handle = new SessionHandle(session, token, recorder, {
      keepMs: Math.max(OUTBOX_KEEP_MS, 2 * this.opts.resumeGraceMs),
      ...(this.opts.now ? { now: this.opts.now } : {}),
    });
    this.byId.set(id, handle);
    this.byToken.set(token, handle);
    handle.outbox.attach(sink);
    handle.outbox.push({ $case: "started", value: this.startedPayload(handle, false) });
    this.opts.logger.info("session started", { session: id, engine: this.opts.engine.capabilities.engine });
    return handle;
  }

  /** Re-attaches a dropped session to a new stream and replays what it missed. */
  resume(token: string, lastEventSeq: number, sink: EventSink): SessionHandle {
    const handle = this.byToken.get(token);
    if (!handle) {
      throw new SessionFault(ErrorCode.ERROR_CODE_NOT_FOUND, "resume token unknown or expired (the grace period passed or the session ended)", { fatal: true });
    }
    // Checked before anything changes: a refused resume leaves the session as it was (its grace timer running).
    if (!handle.outbox.canReplayAfter(lastEventSeq)) {
      throw new SessionFault(ErrorCode.ERROR_CODE_FAILED_PRECONDITION, `events after ${lastEventSeq} are no longer kept; start a new session`, { fatal: true });
    }
    clearTimeout(handle.graceTimer);
    handle.graceTimer = undefined;
    sink.send({ eventSeq: 0, event: { $case: "started", value: this.startedPayload(handle, true) } });
    handle.outbox.attach(sink, lastEventSeq);
    this.opts.logger.info("session resumed", { session: handle.session.id, lastEventSeq });
    return handle;
  }

  /** A chunk of `handle`'s session covering `durationMs` of input arrived: the next one is due that much later. */
  chunkArrived(handle: SessionHandle, durationMs: number): void {
    this.opts.spinWait?.arrived(handle, durationMs);
  }

  /** The stream dropped without SessionEnd: keep the session for the grace period. */
  detach(handle: SessionHandle, sink: EventSink): void {
    // A stream the session was already resumed away from changes nothing: the session is not waiting.
    if (!handle.outbox.detach(sink)) return;
    if (!this.byId.has(handle.session.id)) return;
    this.opts.spinWait?.forget(handle);
    clearTimeout(handle.graceTimer);
    // Capped: a hub built with a grace period past a timer's reach (not through loadConfig) would otherwise end the session after 1 ms.
    handle.graceTimer = setTimeout(() => void this.end(handle, "resume grace period passed"), timerMs(this.opts.resumeGraceMs));
    handle.graceTimer.unref();
    this.opts.logger.info("session detached", { session: handle.session.id, graceMs: this.opts.resumeGraceMs });
  }

  async end(handle: SessionHandle, reason: string): Promise<void> {
    if (!this.byId.delete(handle.session.id)) return;
    this.byToken.delete(handle.resumeToken);
    this.opts.spinWait?.forget(handle);
    clearTimeout(handle.graceTimer);
    // Queued micro-turns still run (SessionEnd and half-close promise that), but an engine that stopped answering cannot hold the end.
    await waitAtMost(handle.session.whenIdle(), this.opts.endWaitMs ?? END_WAIT_MS);
    const recordingPath = (await handle.recorder?.close()) ?? "";
    handle.outbox.push({ $case: "ended", value: { reason, chunks: handle.session.chunkCount, recordingPath } });
    await handle.session.close().catch((err: unknown) => this.opts.logger.warn("engine close failed", { session: handle.session.id, error: String(err) }));
    this.opts.logger.info("session ended", { session: handle.session.id, reason, chunks: handle.session.chunkCount });
    // Ended by the server (shutdown, an error): the stream holding it ends too, as one ended by the client does.
    handle.owner?.sessionEnded();
  }

  /** Stops taking sessions and tells every attached client to resume elsewhere. */
  drain(deadlineMs: number): void {
    this.draining = true;
    for (const handle of this.byId.values()) {
      handle.outbox.push({ $case: "goAway", value: { reason: "sidecar shutting down", resumeToken: handle.resumeToken, deadlineMs } });
    }
  }

  async closeAll(reason: string): Promise<void> {
    await Promise.all([...this.byId.values()].map((h) => this.end(h, reason)));
  }

  private startedPayload(handle: SessionHandle, resumed: boolean): SessionStarted {
    const caps = this.opts.engine.capabilities;
    return {
      sessionId: handle.session.id,
      resumeToken: handle.resumeToken,
      protocolVersion: PROTOCOL_VERSION,
      capabilities: {
        engine: caps.engine,
        modelId: caps.modelId,
        inputModalities: [...caps.inputModalities],
        outputModalities: [...caps.outputModalities],
        supportsRewind: caps.supportsRewind,
        maxContextTokens: caps.maxContextTokens,
        protocolVersion: PROTOCOL_VERSION,
        randomWeights: caps.randomWeights,
      },
      resumeGraceMs: this.opts.resumeGraceMs,
      resumed,
      nextInputSeq: handle.session.expectedSeq,
    };
  }
}
