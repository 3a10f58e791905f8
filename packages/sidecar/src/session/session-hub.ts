// Every live session of one sidecar: creation on SessionStart, lookup by
// resume token, the grace period of a dropped stream, and drain on shutdown.
import { randomBytes, randomUUID } from "node:crypto";
import { ErrorCode, PROTOCOL_VERSION, type ContextItem, type SessionConfig, type SessionError, type SessionSnapshot, type SessionStarted, type ToolSpec } from "@microturn/protocol";
import type { Engine } from "../engines/engine.js";
import { SessionFault } from "../errors.js";
import type { SettleResult, TakeResult } from "../handoff/peer-client.js";
import type { PeerKey } from "../handoff/peer-key.js";
import { fromSnapshot, toSnapshot } from "../handoff/snapshot.js";
import type { Logger } from "../logger.js";
import type { InputMedia } from "./engine-input.js";
import { openCarryingSession } from "./context-window.js";
import type { ContextScript } from "./context-deliveries.js";
import { InteractionSession, type MovedSession, type SessionLimits, type SessionObserver } from "./interaction-session.js";
import { Outbox, type EventSink, type OutboxOptions } from "./outbox.js";
import type { SessionBackground, SessionTools } from "./ports.js";
import { SessionRecorder } from "./session-recorder.js";
import { Speech } from "./speech.js";
import type { SpinWait } from "./spin-wait.js";
import { DELEGATE_TOOL_NAME, DELEGATE_TOOL_SPEC } from "../tools/delegate.js";
import { validateSessionConfig } from "./config-validation.js";
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
  /** Sessions move between this sidecar and its peers (handoff/); without it a resume finds only this sidecar's sessions. */
  handoff?: HubHandoff;
  /**
   * Every session takes what enters its model's context from this recorded
   * script, not from the results that arrive (`microturn replay`, whose
   * sidecar holds the one session it replays).
   */
  contextScript?: ContextScript;
}

/** What a hub needs to move sessions to and from its peers. */
export interface HubHandoff {
  key: PeerKey;
  /** This sidecar's advertised URL, sealed into the resume tokens it gives out. */
  selfUrl: string;
  /** Takes a session from the sidecar at `ownerUrl` (PeerClient.take); throws a SessionFault when it cannot. */
  take(ownerUrl: string, token: string, lastEventSeq: number): Promise<TakeResult>;
  /** Confirms a Take to the sidecar at `ownerUrl` once the session is built here (PeerClient.settle). */
  settle(ownerUrl: string, token: string, handoverId: string): Promise<SettleResult>;
  /** How long a session that moves away waits for its queued micro-turns; default 2 s. */
  releaseWaitMs?: number;
  /**
   * How long a taker has, once it has the state, to confirm it holds the
   * session before another sidecar may take it instead; default 10 s.
   */
  settleLeaseMs?: number;
  /**
   * A move in or out, how it went, and how long it took here (in: the take and
   * the rebuild; out: from the Take until the taker confirmed it), ms.
   * `handed_again`: a session handed out again, to another taker or back to
   * this sidecar, after the first taker let its lease pass (it failed mid-move).
   */
  moved?(direction: "in" | "out", result: MoveResult, ms?: number): void;
}

/** How a move went (HubHandoff.moved). */
export type MoveResult = "ok" | "failed" | "handed_again";

/** How long a session that moves to another sidecar waits for its queued micro-turns by default. */
const RELEASE_WAIT_MS = 2_000;

/** How long a taker has to confirm a hand-over by default before another sidecar may take the session. */
const SETTLE_LEASE_MS = 10_000;

/** Peers a resume follows at most when the session moved on from the sidecar its token names. */
const MAX_MOVED_HOPS = 4;

/**
 * A session handed to a peer, under each token it answered to. Until the
 * peer settles, the state is kept here: the same peer may take it again (its
 * answer was lost), and once its lease ran out so may another (the first then
 * died before it held the session). Once settled, the entry only says where
 * the session went, for the resume grace period: a client that comes back
 * with an old token anywhere is sent on there.
 */
interface Handover {
  /** Names this hand-over in Settle; a new one when another taker gets the session. */
  id: string;
  takerUrl: string;
  sessionId: string;
  /** The state handed over (a promise while the session is still being released); dropped once settled. */
  snapshot: Promise<SessionSnapshot> | undefined;
  /** The snapshot's events are those after this event_seq. */
  afterSeq: number;
  settled: boolean;
  /** performance.now() when the taker's lease runs out (none while the state is not sent yet). */
  leaseEnds: number;
  /** performance.now() at the first Take. */
  started: number;
  tokens: string[];
  timer: NodeJS.Timeout | undefined;
}

/** A take whose engine did not open the session within the lease: the owner keeps it, the client tries again. */
function abandonedMove(leaseMs: number): SessionFault {
  return new SessionFault(ErrorCode.ERROR_CODE_ENGINE, `the engine did not open the moved session within ${leaseMs} ms; resume again`, { retryable: true, fatal: true });
}

/** How long a peer's Take waits for a take of the same session running here before it is told to try again. */
const TAKE_IN_FLIGHT_WAIT_MS = 2_000;

/** A refusal a resuming client gets while its session is on its way elsewhere: it tries again. */
function movingNow(takerUrl: string): SessionFault {
  return new SessionFault(ErrorCode.ERROR_CODE_RESOURCE_EXHAUSTED, `the session is moving to sidecar ${takerUrl} now; resume again`, { retryable: true, fatal: true });
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

/** A resume, or a peer's Take, with a token no session here answers to. */
function tokenUnknown(): SessionFault {
  return new SessionFault(ErrorCode.ERROR_CODE_NOT_FOUND, "resume token unknown or expired (the grace period passed or the session ended)", { fatal: true });
}

/** A resume from an event the session no longer keeps: what the client missed cannot be replayed. */
function eventsGone(lastEventSeq: number): SessionFault {
  return new SessionFault(ErrorCode.ERROR_CODE_FAILED_PRECONDITION, `events after ${lastEventSeq} are no longer kept; start a new session`, { fatal: true });
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
  /**
   * The token the session was taken here with, when it moved from another
   * sidecar: a client whose resume took it but never heard `started` (its
   * stream dropped meanwhile) tries again with that one.
   */
  previousToken: string | undefined;
  /** Recording files the session has so far, on this sidecar and those it moved from (0: not recorded). */
  recordingParts = 0;
  constructor(
    readonly session: InteractionSession,
    readonly config: SessionConfig,
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
  /** The drain's deadline given to clients, once draining. */
  private drainDeadlineMs: number | undefined;
  /** Sessions whose engine session is still opening. */
  private opening = 0;
  /** Sessions handed to peers, by every token they answered to (handOff, settle). */
  private readonly handedOut = new Map<string, Handover>();
  /** The hand-overs in `handedOut`, once each. */
  private readonly handovers = new Set<Handover>();
  /** Resumes taking a session from a peer now, by token: a second resume of it waits for the first. */
  private readonly taking = new Map<string, Promise<unknown>>();
  /**
   * Sessions taken from a peer that could not be built here (the engine
   * failed), by the token the client resumed with: its next resume tries
   * again from the state kept, for up to the resume grace period.
   */
  private readonly parked = new Map<string, { snapshot: SessionSnapshot; afterSeq: number; timer: NodeJS.Timeout }>();

  private readonly observer: SessionObserver;
  /** Tool names a client may not declare: the sidecar's own (delegate whether or not a background model is set). */
  private readonly reservedToolNames: ReadonlySet<string>;

  constructor(private readonly opts: SessionHubOptions) {
    this.reservedToolNames = new Set([DELEGATE_TOOL_NAME, ...(opts.serverTools ?? []).map((t) => t.name)]);
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

  /** Counts an error a stream answered with outside any session's own reporting (bad events, refused starts). */
  countError(code: ErrorCode): void {
    this.observer.error?.(code);
  }

  get size(): number {
    return this.byId.size;
  }

  get resumeGraceMs(): number {
    return this.opts.resumeGraceMs;
  }

  /** How long a taker has to confirm a hand-over (HubHandoff.settleLeaseMs). */
  private get settleLeaseMs(): number {
    return this.opts.handoff?.settleLeaseMs ?? SETTLE_LEASE_MS;
  }

  private get draining(): boolean {
    return this.drainDeadlineMs !== undefined;
  }

  /** Refuses a new session (started or moving here) while draining or full. */
  private checkRoom(): void {
    if (this.draining) throw new SessionFault(ErrorCode.ERROR_CODE_RESOURCE_EXHAUSTED, "sidecar is draining; connect to another one", { retryable: true, fatal: true });
    // Sessions still opening count: concurrent starts must not pass the cap together.
    if (this.byId.size + this.opening >= this.opts.maxSessions) {
      throw new SessionFault(ErrorCode.ERROR_CODE_RESOURCE_EXHAUSTED, `sidecar holds its maximum of ${this.opts.maxSessions} sessions`, { retryable: true, fatal: true });
    }
  }

  /** Whether sessions can move to peers (a draining sidecar then waits for them to be taken). */
  get movesSessions(): boolean {
    return this.opts.handoff !== undefined;
  }

  /**
   * Sessions held, opening or being taken, kept (taken and not built), and
   * handed to a peer that has not confirmed it yet: a draining sidecar stops
   * when none is left.
   */
  get unsettled(): number {
    let handing = 0;
    for (const out of this.handovers) if (!out.settled) handing++;
    return this.byId.size + this.opening + this.parked.size + handing;
  }

  /** Background tasks running now, over every session held here. */
  get backgroundTasks(): number {
    let running = 0;
    for (const handle of this.byId.values()) running += handle.session.backgroundTasks;
    return running;
  }

  sessions(): IterableIterator<SessionHandle> {
    return this.byId.values();
  }

  async create(config: SessionConfig, sink: EventSink): Promise<SessionHandle> {
    this.checkRoom();
    validateSessionConfig(config, this.reservedToolNames);
    this.opening++;
    try {
      return await this.open(config, sink);
    } finally {
      this.opening--;
    }
  }

  private async open(config: SessionConfig, sink: EventSink): Promise<SessionHandle> {
    const handle = await this.build(randomUUID(), config, (built) => {
      built.outbox.attach(sink);
      built.outbox.push({ $case: "started", value: this.startedPayload(built, false) });
    });
    this.opts.logger.info("session started", { session: handle.session.id, engine: this.opts.engine.capabilities.engine });
    return handle;
  }

  /**
   * A session and its handle, registered, and `announce`d to its stream in the
   * same tick (before a recording's failure is reported): a new one, or
   * (`moved`) one that moved here from another sidecar, whose engine session
   * then carries the conversation in its system prompt.
   */
  private async build(
    id: string,
    config: SessionConfig,
    announce: (handle: SessionHandle) => void,
    moved?: { session: MovedSession; recordingParts: number; confirm: () => Promise<void> },
  ): Promise<SessionHandle> {
    // A config the engine cannot serve is refused before an engine session is opened for it.
    const speech = new Speech(config, this.opts.engine.capabilities);
    const background = this.opts.createBackground?.(id);
    const tools = [...config.tools, ...(this.opts.serverTools ?? []), ...(background ? [DELEGATE_TOOL_SPEC] : [])];
    const systemPrompt = [config.instructions, toolPromptSection(tools)].filter(Boolean).join("\n\n");
    // What every engine session of this conversation is opened with, the ones after a rollover too.
    const engineOptions = {
      ...(this.opts.limits.sessionTokens ? { capacityTokens: this.opts.limits.sessionTokens } : {}),
      ...(speech.speaks ? { audioOutput: true } : {}),
    };
    // A moved session's engine sessions get ids of their own: the ones it had elsewhere may still be closing.
    const engineId = moved ? `${id}-m${randomBytes(3).toString("hex")}` : id;
    let reopened = 0;
    const reopen = (prompt: string) => this.opts.engine.openSession({ sessionId: `${engineId}-r${++reopened}`, systemPrompt: prompt, ...engineOptions });
    let engineSession = await this.opts.engine.openSession({ sessionId: engineId, systemPrompt, ...engineOptions });
    const promptTokens = engineSession.positionTokens;
    if (moved && moved.session.conversation.length > 0) {
      const plain = engineSession;
      engineSession = (await openCarryingSession(plain, systemPrompt, promptTokens, moved.session.conversation, reopen)).fresh;
      await plain.close().catch(() => undefined);
    }
    if (moved) {
      // The sidecar it came from keeps the state until this one holds the session: nothing before this point may lose it.
      try {
        await moved.confirm();
      } catch (err) {
        await engineSession.close().catch(() => undefined);
        throw err;
      }
    }
    const capacityTokens = engineSession.stats().capacityTokens;
    if (capacityTokens > 0 && promptTokens > capacityTokens / 2) {
      this.opts.logger.warn("the system prompt takes over half of the session's capacity; raise --session-tokens or shorten instructions and tools", {
        session: id,
        promptTokens,
        capacityTokens,
      });
    }
    const token = this.opts.handoff ? this.opts.handoff.key.mintToken(this.opts.handoff.selfUrl) : randomBytes(24).toString("base64url");
    let handle: SessionHandle | undefined;
    // A session that moved here goes on in the next part of its recording, if it was being recorded.
    const recordingPart = moved ? (moved.recordingParts > 0 ? moved.recordingParts + 1 : 0) : 1;
    const recorder =
      config.record && this.opts.recordDir && recordingPart > 0
        ? new SessionRecorder(
            this.opts.recordDir,
            id,
            (err) => {
              this.opts.logger.warn("recording failed; the session goes on unrecorded", { session: id, error: err.message });
              // A file that could not be opened fails before the session exists: the error follows its SessionStarted.
              const report = () => handle!.outbox.push({ $case: "error", value: recordingError(err) });
              if (handle) report();
              else queueMicrotask(report);
            },
            recordingPart,
          )
        : undefined;
    const session = new InteractionSession({
      id,
      engineSession,
      systemPrompt,
      toolSpecs: tools,
      reopen,
      capabilities: this.opts.engine.capabilities,
      config,
      speech,
      limits: this.opts.limits,
      emit: (payload) => handle!.outbox.push(payload),
      media: this.opts.createMedia?.(),
      background,
      tools: this.opts.createTools?.(id, config),
      observer: this.observer,
      ...(moved ? { moved: moved.session, promptTokens } : {}),
      ...(this.opts.contextScript ? { contextScript: this.opts.contextScript } : {}),
      ...(recorder ? { onContext: (seq: number, items: readonly ContextItem[]) => recorder.recordContext(seq, items) } : {}),
    });
    handle = new SessionHandle(session, config, token, recorder, {
      keepMs: Math.max(OUTBOX_KEEP_MS, 2 * this.opts.resumeGraceMs),
      ...(this.opts.now ? { now: this.opts.now } : {}),
    });
    handle.recordingParts = recorder ? recorder.part : (moved?.recordingParts ?? 0);
    this.byId.set(id, handle);
    this.byToken.set(token, handle);
    announce(handle);
    // Begun before the drain: sent on at once, as the sessions held when it began were.
    if (this.drainDeadlineMs !== undefined) this.goAway(handle, this.drainDeadlineMs);
    return handle;
  }

  /**
   * Re-attaches a dropped session to a new stream and replays what it missed.
   * A session another sidecar holds (its token says which) is taken from it
   * first when this sidecar has peers.
   */
  async resume(token: string, lastEventSeq: number, sink: EventSink): Promise<SessionHandle> {
    const handle = this.byToken.get(token);
    if (handle) return this.resumeHere(handle, lastEventSeq, sink);
    const inFlight = this.taking.get(token);
    if (inFlight) {
      // The client gave up on a resume still taking its session (its stream dropped): this one gets the
      // session once it is here, or that take's failure (trying again could take it from where it went since).
      const failure = await inFlight.then(
        () => undefined,
        (err: unknown) => err,
      );
      if (failure !== undefined) throw failure;
      return this.resume(token, lastEventSeq, sink);
    }
    const handoff = this.opts.handoff;
    const parked = this.parked.get(token);
    // Where the session is: the sidecar the token names, or (one this sidecar handed on) the one it went to,
    // or here still, when the sidecar it was handed to let its lease pass without confirming it.
    const handed = this.handedOut.get(token);
    if (handed && !handed.settled && performance.now() < handed.leaseEnds) throw movingNow(handed.takerUrl);
    const source = handed ? (handed.settled ? handed.takerUrl : handoff?.selfUrl) : handoff?.key.ownerOf(token);
    if (!handoff || (!parked && (source === undefined || (source === handoff.selfUrl && !handed)))) throw tokenUnknown();
    if (parked && lastEventSeq < parked.afterSeq) throw eventsGone(lastEventSeq);
    this.checkRoom();
    this.opening++;
    const taking = this.takeHere(handoff, token, source!, parked, lastEventSeq, sink);
    this.taking.set(token, taking);
    try {
      return await taking;
    } finally {
      this.taking.delete(token);
      this.opening--;
    }
  }

  /**
   * Takes the session behind `token` from the sidecar at `source` (following
   * it on where it moved on), builds it here, confirms it to the sidecar it
   * came from, and only then lets it run and speak to the client. A session
   * kept here (`parked`) is built from what was kept.
   */
  private async takeHere(
    handoff: HubHandoff,
    token: string,
    source: string,
    parked: { snapshot: SessionSnapshot; afterSeq: number } | undefined,
    lastEventSeq: number,
    sink: EventSink,
  ): Promise<SessionHandle> {
    const started = performance.now();
    const leaseMs = this.settleLeaseMs;
    let taken: { snapshot: SessionSnapshot; handoverId: string; from: string } | undefined;
    // pending: to confirm; done: confirmed (a parked session was when it was parked), or nothing to confirm;
    // refused: the session went elsewhere; abandoned: the build outlasted the lease and was given up.
    let confirm = (parked ? "done" : "pending") as "pending" | "confirming" | "done" | "refused" | "abandoned";
    const settle = async () => {
      if (confirm === "abandoned") throw abandonedMove(leaseMs);
      if (confirm !== "pending" || !taken) return;
      // An owner from before Settle kept no copy: the session is this sidecar's already.
      if (!taken.handoverId) {
        confirm = "done";
        return;
      }
      confirm = "confirming";
      const once = () => (taken!.from === handoff.selfUrl ? this.settleOwn(token, taken!.handoverId) : handoff.settle(taken!.from, token, taken!.handoverId));
      let settled = await once();
      // A call that failed is tried again while the lease lasts: going on unconfirmed while the owner is
      // alive could let it hand the session to another sidecar after the lease.
      const until = performance.now() + leaseMs;
      for (let waitMs = 50; settled.result === "unreachable" && performance.now() < until; waitMs = Math.min(2 * waitMs, 1000)) {
        await new Promise((resolve) => setTimeout(resolve, waitMs));
        settled = await once();
      }
      if (settled.result === "refused") {
        confirm = "refused";
        throw new SessionFault(ErrorCode.ERROR_CODE_RESOURCE_EXHAUSTED, `the session went to another sidecar while this one was taking it (${settled.why}); resume again`, {
          retryable: true,
          fatal: true,
        });
      }
      confirm = "done";
      // The owner forgot the hand-over or stayed out of reach for the whole lease: nobody can take the session from it, so it goes on here.
      if (settled.result !== "settled") this.opts.logger.warn("could not confirm a move to the sidecar the session came from; it goes on here", { from: taken.from, why: settled.why });
    };
    try {
      taken = parked ? undefined : await this.takeFollowing(handoff, source, token, lastEventSeq);
      const snapshot = parked?.snapshot ?? taken!.snapshot;
      const adopting = this.adopt(token, snapshot, lastEventSeq, sink, settle);
      // (An owner from before Settle kept no copy: given up, the session would be lost, so it is waited for.)
      if (confirm === "pending" && taken?.handoverId) {
        // An engine that does not open the session within the lease: the owner may hand it elsewhere after it, so this
        // sidecar gives up (what it was building closes when it gets as far as the confirmation) and the client tries again.
        adopting.catch(() => undefined);
        let built = false;
        await waitAtMost(adopting.then(() => (built = true)), leaseMs);
        if (!built && confirm === "pending") {
          confirm = "abandoned";
          throw abandonedMove(leaseMs);
        }
      }
      const moved = await adopting;
      if (parked) this.unpark(token);
      handoff.moved?.("in", "ok", performance.now() - started);
      this.opts.logger.info("session moved here from another sidecar", { session: moved.session.id, from: taken?.from ?? "kept here", lastEventSeq, nextInputSeq: moved.session.expectedSeq });
      return moved;
    } catch (err) {
      handoff.moved?.("in", "failed", performance.now() - started);
      this.opts.logger.warn("could not take a session from another sidecar", { from: taken?.from ?? source, error: (err as Error).message });
      const snapshot = parked?.snapshot ?? taken?.snapshot;
      // Taken but not built (the engine failed): confirmed and kept here for the client's next try, unless another
      // sidecar has it by now or the owner still keeps it (the build was given up before confirming).
      if (snapshot && (confirm === "pending" || confirm === "done") && !(SessionFault.isInstance(err) && err.code === ErrorCode.ERROR_CODE_INTERNAL)) {
        await settle();
        throw this.park(token, snapshot, parked?.afterSeq ?? lastEventSeq, err);
      }
      throw err;
    }
  }

  /** Takes the session from `source`, or from the sidecar it moved on to from there. */
  private async takeFollowing(handoff: HubHandoff, source: string, token: string, lastEventSeq: number) {
    let from = source;
    for (let hops = 0; ; hops++) {
      // Taken back from its own hand-over (see resume): no call to make.
      const result = from === handoff.selfUrl ? await this.handOff(token, lastEventSeq, from) : await handoff.take(from, token, lastEventSeq);
      if ("snapshot" in result) return { ...result, from };
      // Moved here, and not here any more (this sidecar restarted): nothing holds it.
      if (result.movedTo === handoff.selfUrl || hops === MAX_MOVED_HOPS) throw tokenUnknown();
      this.opts.logger.info("the session moved on from the sidecar its token names; following it", { from, to: result.movedTo });
      from = result.movedTo;
    }
  }

  /** Keeps a taken session's state for the client's next resume; returns what to tell the client now. */
  private park(token: string, snapshot: SessionSnapshot, afterSeq: number, err: unknown): SessionFault {
    if (!this.parked.has(token)) {
      const timer = setTimeout(() => {
        this.unpark(token);
        this.opts.logger.error("session lost: taken from another sidecar and never built here", { session: snapshot.sessionId });
      }, timerMs(this.opts.resumeGraceMs));
      timer.unref();
      this.parked.set(token, { snapshot, afterSeq, timer });
    }
    const why = err instanceof Error ? err.message : String(err);
    return new SessionFault(ErrorCode.ERROR_CODE_ENGINE, `the session moved here but could not be rebuilt (${why}); it is kept for ${this.opts.resumeGraceMs} ms: resume again`, {
      retryable: true,
      fatal: true,
      cause: err,
    });
  }

  private unpark(token: string): void {
    clearTimeout(this.parked.get(token)?.timer);
    this.parked.delete(token);
  }

  private resumeHere(handle: SessionHandle, lastEventSeq: number, sink: EventSink): SessionHandle {
    // A draining sidecar with peers sends its clients on: their next resume reaches another sidecar, which takes the session.
    if (this.draining && this.opts.handoff) {
      throw new SessionFault(ErrorCode.ERROR_CODE_RESOURCE_EXHAUSTED, "sidecar is draining; resume again to move the session to another sidecar", { retryable: true, fatal: true });
    }
    // Checked before anything changes: a refused resume leaves the session as it was (its grace timer running).
    if (!handle.outbox.canReplayAfter(lastEventSeq)) throw eventsGone(lastEventSeq);
    clearTimeout(handle.graceTimer);
    handle.graceTimer = undefined;
    sink.send({ eventSeq: 0, event: { $case: "started", value: this.startedPayload(handle, true) } });
    handle.outbox.attach(sink, lastEventSeq);
    this.opts.logger.info("session resumed", { session: handle.session.id, lastEventSeq });
    return handle;
  }

  /**
   * A session taken from another sidecar: built here, `confirm`ed to the
   * sidecar it came from, its missed events replayed to the client, then its
   * work goes on.
   */
  private async adopt(token: string, snapshot: SessionSnapshot, lastEventSeq: number, sink: EventSink, confirm: () => Promise<void>): Promise<SessionHandle> {
    let parts;
    try {
      parts = fromSnapshot(snapshot);
    } catch (err) {
      throw new SessionFault(ErrorCode.ERROR_CODE_INTERNAL, `the session's state from the other sidecar is unusable: ${(err as Error).message}`, { fatal: true });
    }
    const announce = (handle: SessionHandle) => {
      handle.outbox.restore(parts.events, parts.lastEventSeq);
      sink.send({ eventSeq: 0, event: { $case: "started", value: this.startedPayload(handle, true) } });
      handle.outbox.attach(sink, lastEventSeq);
    };
    const handle = await this.build(parts.sessionId, parts.config, announce, { session: parts.moved, recordingParts: parts.recordingParts, confirm });
    handle.previousToken = token;
    this.byToken.set(token, handle);
    handle.session.resumeMoved(parts.moved);
    return handle;
  }

  /**
   * A peer takes the session behind `token` (its client resumed there): the
   * stream holding it here ends, its queued micro-turns get `releaseWaitMs`,
   * and its state goes to the peer with the events after `lastEventSeq`. The
   * state is kept until the peer settles (see Handover). A session that moved
   * on from here is answered with where it went.
   */
  async handOff(token: string, lastEventSeq: number, takerUrl: string, settles = true): Promise<TakeResult> {
    const handle = this.byToken.get(token);
    // (This sidecar taking a session back from its own hand-over calls this from inside that take.)
    const inFlight = handle || takerUrl === this.opts.handoff?.selfUrl ? undefined : this.taking.get(token);
    if (inFlight) {
      // Being taken here now (from its owner, or built from what was kept): handed on once that is done.
      await waitAtMost(inFlight.catch(() => undefined), TAKE_IN_FLIGHT_WAIT_MS);
      if (this.taking.has(token)) throw movingNow(this.opts.handoff?.selfUrl ?? "this one");
      return this.handOff(token, lastEventSeq, takerUrl, settles);
    }
    if (handle) {
      if (!handle.outbox.canReplayAfter(lastEventSeq)) throw eventsGone(lastEventSeq);
      this.forget(handle);
      this.opts.spinWait?.forget(handle);
      clearTimeout(handle.graceTimer);
      const stream = handle.owner;
      handle.owner = undefined;
      stream?.superseded();
      handle.outbox.detach();
      const tokens = [handle.resumeToken, ...(handle.previousToken === undefined ? [] : [handle.previousToken])];
      return this.handOut(this.handover(handle.session.id, tokens, takerUrl, lastEventSeq, this.release(handle, lastEventSeq, takerUrl)), settles);
    }
    const parked = this.parked.get(token);
    if (parked) {
      // Taken here and not built: it goes on to the peer as it came.
      if (lastEventSeq < parked.afterSeq) throw eventsGone(lastEventSeq);
      this.unpark(token);
      return this.handOut(this.handover(parked.snapshot.sessionId, [token], takerUrl, parked.afterSeq, Promise.resolve(parked.snapshot)), settles);
    }
    const out = this.handedOut.get(token);
    if (!out) throw tokenUnknown();
    if (out.settled) {
      // Taken back here and gone since (ended, or lost): nowhere to send the resume.
      if (out.takerUrl === this.opts.handoff?.selfUrl) throw tokenUnknown();
      return { movedTo: out.takerUrl };
    }
    // The same taker asking again (it never got the answer), or a new one.
    if (lastEventSeq < out.afterSeq) throw eventsGone(lastEventSeq);
    if (out.takerUrl !== takerUrl) {
      if (performance.now() < out.leaseEnds) throw movingNow(out.takerUrl);
      this.opts.logger.warn("handing a session to another sidecar: the one it went to did not confirm it in time", { session: out.sessionId, from: out.takerUrl, to: takerUrl });
      this.opts.handoff?.moved?.("out", "handed_again");
      out.id = randomBytes(12).toString("base64url");
      out.takerUrl = takerUrl;
      // The new taker gets a whole grace period before the hand-over is given up.
      this.expireUnsettled(out);
    }
    return this.handOut(out, settles);
  }

  /** The peer confirms it holds the session handed over as `handoverId`: the state kept for it goes. */
  settle(token: string, handoverId: string, takerUrl: string): SettleResult {
    const out = this.handedOut.get(token);
    if (!out) {
      // Taken back (the taker's lease passed and the client came back here): the late taker must let go.
      if (this.byToken.has(token) || this.parked.has(token)) return { result: "refused", why: `the session is back on this sidecar: ${takerUrl} did not confirm it within its lease` };
      return { result: "unknown", why: "no such hand-over here (it expired, or this sidecar restarted)" };
    }
    if (out.id !== handoverId) {
      const where = out.takerUrl === this.opts.handoff?.selfUrl ? "is back on this sidecar" : `went to sidecar ${out.takerUrl}`;
      return { result: "refused", why: `the session ${where}: ${takerUrl} did not confirm it within its lease` };
    }
    if (!out.settled) this.movedOut(out, "session moved to another sidecar");
    return { result: "settled" };
  }

  /** Settles a hand-over this sidecar made to itself: the session came back before its taker confirmed it. */
  private settleOwn(token: string, handoverId: string): SettleResult {
    const out = this.handedOut.get(token);
    if (out?.id !== handoverId) return { result: "refused", why: `the session went to sidecar ${out?.takerUrl ?? "(none)"}` };
    // Kept as a record that the session is here, so the first taker's late settlement is refused.
    this.markSettled(out);
    this.opts.logger.warn("session taken back: the sidecar it was handed to did not confirm it in time", { session: out.sessionId });
    return { result: "settled" };
  }

  /** A move out went through: counted and logged, and settled. */
  private movedOut(out: Handover, message: string): void {
    this.opts.handoff?.moved?.("out", "ok", performance.now() - out.started);
    this.opts.logger.info(message, { session: out.sessionId, to: out.takerUrl });
    this.markSettled(out);
  }

  /** The taker holds the session: the state kept for it goes, and the entry says where it went, for the grace period. */
  private markSettled(out: Handover): void {
    out.settled = true;
    out.snapshot = undefined;
    clearTimeout(out.timer);
    out.timer = setTimeout(() => this.dropHandover(out), timerMs(this.opts.resumeGraceMs));
    out.timer.unref();
  }

  /** Registers a hand-over of a session no longer held here under its tokens. */
  private handover(sessionId: string, tokens: string[], takerUrl: string, afterSeq: number, snapshot: Promise<SessionSnapshot>): Handover {
    const out: Handover = {
      id: randomBytes(12).toString("base64url"),
      takerUrl,
      sessionId,
      snapshot,
      afterSeq,
      settled: false,
      leaseEnds: Infinity,
      started: performance.now(),
      tokens,
      timer: undefined,
    };
    for (const token of tokens) this.handedOut.set(token, out);
    this.handovers.add(out);
    this.expireUnsettled(out);
    snapshot.catch(() => this.dropHandover(out));
    return out;
  }

  /** Gives `out` up if it is not settled within the grace period: no client came back for it, and its taker did not confirm it. */
  private expireUnsettled(out: Handover): void {
    clearTimeout(out.timer);
    out.timer = setTimeout(() => {
      this.dropHandover(out);
      this.opts.handoff?.moved?.("out", "failed");
      this.opts.logger.error("session lost unless the sidecar it was handed to holds it: that one never confirmed it", { session: out.sessionId, to: out.takerUrl });
    }, timerMs(this.opts.resumeGraceMs));
    out.timer.unref();
  }

  /**
   * The state of `out` for its taker, whose lease starts once it is sent. A
   * taker from before Settle (`settles` false) will not confirm: the session
   * is its own as soon as the state is sent, and it gets no hand-over id.
   */
  private async handOut(out: Handover, settles: boolean): Promise<TakeResult> {
    const handoverId = out.id;
    const snapshot = await out.snapshot!;
    out.leaseEnds = performance.now() + this.settleLeaseMs;
    if (settles) return { snapshot, handoverId };
    if (out.id === handoverId && !out.settled) this.movedOut(out, "session moved to another sidecar (one that does not confirm moves)");
    return { snapshot, handoverId: "" };
  }

  private dropHandover(out: Handover): void {
    clearTimeout(out.timer);
    this.handovers.delete(out);
    for (const token of out.tokens) if (this.handedOut.get(token) === out) this.handedOut.delete(token);
  }

  /** Stops a session that moves away and gives its state, with the events after `lastEventSeq`. */
  private async release(handle: SessionHandle, lastEventSeq: number, takerUrl: string): Promise<SessionSnapshot> {
    const id = handle.session.id;
    try {
      const moved = await handle.session.release(this.opts.handoff?.releaseWaitMs ?? RELEASE_WAIT_MS);
      await handle.recorder?.close();
      const events = handle.outbox.eventsAfter(lastEventSeq);
      this.opts.logger.info("session handed to another sidecar", { session: id, to: takerUrl, replayedEvents: events.length, queuedChunks: moved.queuedInput.length, tasks: moved.tasks.length });
      return toSnapshot({ sessionId: id, config: handle.config, events, lastEventSeq: handle.outbox.lastEventSeq, moved, recordingParts: handle.recordingParts });
    } catch (err) {
      this.opts.handoff?.moved?.("out", "failed");
      this.opts.logger.error("session lost while moving to another sidecar", { session: id, to: takerUrl, error: String(err) });
      throw err;
    }
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
    if (!this.byId.has(handle.session.id)) return;
    this.forget(handle);
    this.opts.spinWait?.forget(handle);
    clearTimeout(handle.graceTimer);
    // Queued micro-turns still run (SessionEnd and half-close promise that), but an engine that stopped answering cannot hold the end.
    await waitAtMost(handle.session.whenIdle(), this.opts.endWaitMs ?? END_WAIT_MS);
    const recordingPath = (await handle.recorder?.close()) ?? "";
    // Its tasks' and tool calls' cancellations go out before SessionEnded: nothing follows that.
    handle.session.stop();
    handle.outbox.push({ $case: "ended", value: { reason, chunks: handle.session.chunkCount, recordingPath } });
    await handle.session.close().catch((err: unknown) => this.opts.logger.warn("engine close failed", { session: handle.session.id, error: String(err) }));
    this.opts.logger.info("session ended", { session: handle.session.id, reason, chunks: handle.session.chunkCount });
    // Ended by the server (shutdown, an error): the stream holding it ends too, as one ended by the client does.
    handle.owner?.sessionEnded();
  }

  /** Takes the session out of the maps: no resume finds it here any more. */
  private forget(handle: SessionHandle): void {
    this.byId.delete(handle.session.id);
    this.byToken.delete(handle.resumeToken);
    if (handle.previousToken !== undefined) this.byToken.delete(handle.previousToken);
  }

  /** Stops taking sessions and tells every attached client to resume elsewhere. */
  drain(deadlineMs: number): void {
    this.drainDeadlineMs = deadlineMs;
    for (const handle of this.byId.values()) this.goAway(handle, deadlineMs);
  }

  private goAway(handle: SessionHandle, deadlineMs: number): void {
    handle.outbox.push({ $case: "goAway", value: { reason: "sidecar shutting down", resumeToken: handle.resumeToken, deadlineMs } });
  }

  async closeAll(reason: string): Promise<void> {
    for (const [token, { snapshot }] of this.parked) {
      this.unpark(token);
      this.opts.logger.warn("session lost: taken from another sidecar and not built here before the sidecar stopped", { session: snapshot.sessionId });
    }
    for (const out of this.handovers) {
      if (!out.settled) this.opts.logger.warn("a session handed to another sidecar was not confirmed before this one stopped; the taker keeps it if it built it", { session: out.sessionId, to: out.takerUrl });
      this.dropHandover(out);
    }
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
      maxOutputTokensPerTurn: handle.session.outputTokensPerTurn,
    };
  }
}
