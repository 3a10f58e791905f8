// One Converse stream, whatever carries it (gRPC or WebSocket): the first
// event opens or resumes a session, later events go to it, and a stream that
// drops without SessionEnd leaves the session waiting for resume.
import { ErrorCode, isCompatibleProtocol, PROTOCOL_VERSION, type ClientEvent, type ServerEvent } from "@microturn/protocol";
import { SessionFault, toSessionError } from "../errors.js";
import type { Logger } from "../logger.js";
import type { SessionHandle, SessionHub } from "./session-hub.js";

/** A bidirectional event stream to one client. */
export interface EventChannel {
  send(event: ServerEvent): void;
  /** Ends the stream: cleanly, or with a fatal error the transport maps to a status. */
  end(error?: { code: ErrorCode; message: string }): void;
}

/** Events whose handling awaits (session open, resume, end): later events wait behind them. */
const ASYNC_CASES: ReadonlySet<string | undefined> = new Set(["start", "resume", "end"]);
const DONE = Promise.resolve();

export class ConverseStream {
  private handle: SessionHandle | undefined;
  /** Client events are handled strictly in order: behind an open, resume or end still under way, events wait their turn. */
  private chain: Promise<void> = Promise.resolve();
  /** Events queued on the chain and not yet handled. */
  private waiting = 0;
  private ended = false;

  constructor(
    private readonly hub: SessionHub,
    private readonly channel: EventChannel,
    private readonly logger: Logger,
  ) {}

  /**
   * Handles one client event, after every earlier one; never throws (errors
   * become SessionError events). Most events (input, acks, tool results) are
   * handled at once when nothing is ahead of them: a chunk costs no promise.
   */
  onEvent(event: ClientEvent): Promise<void> {
    if (this.waiting === 0 && !ASYNC_CASES.has(event.event?.$case)) {
      this.handleNow(event);
      return DONE;
    }
    return this.enqueue(() => this.handleEvent(event));
  }

  /**
   * A frame that did not decode as a ClientEvent (bytes that are not one, a
   * number past what it can carry): an INVALID_ARGUMENT error in its place,
   * in order with the events around it; the stream and session go on.
   */
  onMalformed(reason: string): Promise<void> {
    const event: ClientEvent = { eventId: "", event: undefined };
    const report = async (): Promise<void> => {
      if (!this.ended) this.fail(new SessionFault(ErrorCode.ERROR_CODE_INVALID_ARGUMENT, `malformed ClientEvent frame: ${reason}`), event);
    };
    if (this.waiting === 0) return report();
    return this.enqueue(report);
  }

  /**
   * The client half-closed: it sends nothing more but still reads. A session it
   * did not end with SessionEnd is ended now; then the stream ends.
   */
  onHalfClose(): Promise<void> {
    return this.enqueue(async () => {
      if (this.ended) return;
      if (this.handle) await this.hub.end(this.handle, "client closed its stream");
      this.finish();
    });
  }

  /** Runs `work` after everything queued before it; `waiting` counts it until it is done. */
  private enqueue(work: () => Promise<void>): Promise<void> {
    this.waiting++;
    this.chain = this.chain.then(work).finally(() => this.waiting--);
    return this.chain;
  }

  /** An event whose handling is synchronous, with nothing ahead of it. */
  private handleNow(event: ClientEvent): void {
    if (this.ended) return;
    try {
      this.handle?.recorder?.record(event);
      this.dispatchSync(event);
    } catch (err) {
      this.fail(err, event);
    }
  }

  private async handleEvent(event: ClientEvent): Promise<void> {
    if (this.ended) return;
    try {
      const opened = this.handle !== undefined;
      if (opened) this.handle!.recorder?.record(event);
      const payload = event.event;
      if (payload?.$case === "start" || payload?.$case === "resume") await this.open(payload);
      else if (payload?.$case === "end") await this.end(payload.value.reason);
      else this.dispatchSync(event);
      // The opening event is recorded once its session (and recorder) exists.
      if (!opened && payload?.$case === "start") this.handle?.recorder?.record(event);
    } catch (err) {
      this.fail(err, event);
    }
  }

  private fail(err: unknown, event: ClientEvent): void {
    const error = toSessionError(err, { eventId: event.eventId });
    this.hub.countError(error.code);
    if (this.handle) this.handle.outbox.push({ $case: "error", value: error });
    else this.channel.send({ eventSeq: 0, event: { $case: "error", value: error } });
    if (error.fatal) this.finish({ code: error.code, message: error.message });
  }

  /** The transport is gone (cancelled, reset, socket closed): the session waits for resume. */
  onClose(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.handle) this.hub.detach(this.handle, this.channel);
  }

  /** Every event but start, resume and end: handled synchronously. */
  private dispatchSync(event: ClientEvent): void {
    const payload = event.event;
    if (!payload) throw new SessionFault(ErrorCode.ERROR_CODE_INVALID_ARGUMENT, "event has no payload (unknown oneof case or empty message)");
    const handle = this.handle;
    if (!handle) {
      throw new SessionFault(ErrorCode.ERROR_CODE_FAILED_PRECONDITION, `"${payload.$case}" before the session started: send start (or resume) first`);
    }
    const session = handle.session;
    switch (payload.$case) {
      case "input":
        session.acceptInput(payload.value, event.eventId);
        this.hub.chunkArrived(handle, payload.value.durationMs);
        return;
      case "playback":
        session.playbackAck(payload.value.playedUpToMs);
        return;
      case "interrupt":
        session.interrupt(payload.value.playedUpToMs);
        return;
      case "toolResult":
        session.toolResult(payload.value.callId, payload.value.outputJson, payload.value.isError);
        return;
      case "delegate":
        session.delegate(payload.value.task, payload.value.delivery, { taskId: payload.value.taskId, timeoutMs: payload.value.timeoutMs });
        return;
      case "cancelTask":
        session.cancelTask(payload.value.taskId);
        return;
      default:
        throw new SessionFault(ErrorCode.ERROR_CODE_INTERNAL, `"${payload.$case}" reached the synchronous path`);
    }
  }

  private async open(payload: Extract<NonNullable<ClientEvent["event"]>, { $case: "start" | "resume" }>): Promise<void> {
    if (this.handle) throw new SessionFault(ErrorCode.ERROR_CODE_FAILED_PRECONDITION, `${payload.$case} on a stream whose session is already open`);
    if (!isCompatibleProtocol(payload.value.protocolVersion)) {
      throw new SessionFault(
        ErrorCode.ERROR_CODE_VERSION_MISMATCH,
        `client speaks protocol "${payload.value.protocolVersion}", this sidecar speaks ${PROTOCOL_VERSION} (major versions must match)`,
        { fatal: true },
      );
    }
    if (payload.$case === "start") {
      const config = payload.value.config;
      if (!config) throw new SessionFault(ErrorCode.ERROR_CODE_INVALID_ARGUMENT, "start.config is required", { fatal: true });
      this.handle = await this.hub.create(config, this.channel);
      this.handle.owner = this;
      // The stream dropped while the session was opening: it waits for a resume like any dropped session.
      if (this.ended) this.hub.detach(this.handle, this.channel);
    } else {
      this.handle = await this.hub.resume(payload.value.resumeToken, payload.value.lastEventSeq, this.channel);
      const previous = this.handle.owner;
      this.handle.owner = this;
      // A client that resumed before its old stream was seen to drop: that stream lets go of the session.
      if (previous && previous !== this) previous.superseded();
      // The stream dropped while the session was being taken from another sidecar: it waits here for the next resume.
      if (this.ended) this.hub.detach(this.handle, this.channel);
    }
  }

  /** The session ended (whoever ended it): so does the stream that holds it. */
  sessionEnded(): void {
    this.finish();
  }

  /**
   * The session was resumed on another stream. This one lets go of it without
   * detaching or ending it (its events, half-close and close no longer touch
   * the session) and ends.
   */
  superseded(): void {
    if (this.ended) return;
    this.logger.info("stream superseded: the session was resumed on another stream", { session: this.handle?.session.id });
    this.handle = undefined;
    this.finish({ code: ErrorCode.ERROR_CODE_FAILED_PRECONDITION, message: "the session was resumed on another stream" });
  }

  private async end(reason: string): Promise<void> {
    if (!this.handle) throw new SessionFault(ErrorCode.ERROR_CODE_FAILED_PRECONDITION, `"end" before the session started: send start (or resume) first`);
    await this.hub.end(this.handle, reason || "client ended the session");
    this.finish();
  }

  private finish(error?: { code: ErrorCode; message: string }): void {
    if (this.ended) return;
    this.ended = true;
    if (this.handle) this.handle.outbox.detach(this.channel);
    try {
      this.channel.end(error);
    } catch (err) {
      // A transport that cannot end cleanly is cut by its own close; the process goes on.
      this.logger.warn("stream end failed", { session: this.handle?.session.id, error: String(err) });
    }
    this.logger.debug("stream ended", { session: this.handle?.session.id, error: error?.message });
  }
}
