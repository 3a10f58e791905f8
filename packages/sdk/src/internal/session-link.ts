// Keeps one session's stream alive: opens it (start or resume), dedupes server
// events by event_seq, holds sent input chunks until the server acks them,
// and on a drop or GoAway resumes with backoff and resends what was not taken.
import {
  type ClientEvent,
  ErrorCode,
  type InputChunk,
  isCompatibleProtocol,
  PROTOCOL_VERSION,
  type ServerEvent,
  type SessionStart,
  type SessionStarted,
} from "@microturn/protocol";
import { AbortError, ConnectionError, MicroturnError, ResourceExhaustedError, TimeoutError } from "../core/error.js";
import { errorFromSessionError, type SessionAPIError } from "../core/grpc-error.js";
import { ProtocolVersionError, SessionClosedError } from "../core/session-errors.js";
import { isRetryableFailure, type Transport, type TransportStream } from "../core/transport.js";
import { race, sleep } from "./abort.js";
import { backoffDelayMs, type ResolvedReconnectOptions } from "./backoff.js";

export type LinkState = "idle" | "connecting" | "open" | "reconnecting" | "closing" | "closed";

export interface ReconnectingInfo {
  attempt: number;
  delayMs: number;
  /** Why the stream dropped; undefined for a GoAway. */
  error: MicroturnError | undefined;
}

export interface ReconnectedInfo {
  attempt: number;
  sessionId: string;
  /** Input chunks sent again because the server had not taken them. */
  resentChunks: number;
}

export interface LinkCallbacks {
  /** A deduped server event; `error` events come with their typed error. */
  event(event: ServerEvent, error?: SessionAPIError): void;
  reconnecting(info: ReconnectingInfo): void;
  reconnected(info: ReconnectedInfo): void;
  /** The link is over: cleanly (no error), after a fatal SessionError (already seen as an event), or because it gave up. */
  closed(error: MicroturnError | undefined): void;
}

export interface LinkOptions {
  reconnect: ResolvedReconnectOptions;
  connectTimeoutMs: number;
  maxUnackedChunks: number;
  random?: () => number;
}

interface StartWaiter {
  resolve(started: SessionStarted): void;
  reject(error: MicroturnError): void;
}

export class SessionLink {
  state: LinkState = "idle";
  sessionId = "";
  resumeToken = "";
  lastEventSeq = 0;
  private stream: TransportStream | undefined;
  private generation = 0;
  private waiter: StartWaiter | undefined;
  private endedSeen = false;
  private fatal: MicroturnError | undefined;
  private readonly unacked = new Map<number, InputChunk>();
  private readonly pendingControl: ClientEvent[] = [];
  private readonly lifetime = new AbortController();
  /** Told when the stream ends after SessionEnd went out, with the stream's error if it failed. */
  private endWaiter: ((error: MicroturnError | undefined) => void) | undefined;
  /** The resume attempt whose stream is opening (for `reconnected`). */
  private resumeAttempt = 0;

  constructor(
    private readonly transport: Transport,
    private readonly options: LinkOptions,
    private readonly callbacks: LinkCallbacks,
  ) {}

  /** Chunks sent and not yet acked. */
  get unackedSeqs(): number[] {
    return [...this.unacked.keys()];
  }

  async start(start: SessionStart, signal?: AbortSignal): Promise<SessionStarted> {
    this.state = "connecting";
    try {
      // The link is open once SessionStarted arrives (see opened()), not when this resumes: events in the same read
      // (a GoAway, the stream's end) are handled as on an open link.
      return await this.openStream({ $case: "start", value: start }, this.options.connectTimeoutMs, signal);
    } catch (error) {
      this.teardown();
      throw error;
    }
  }

  /** Throws before a chunk is cut when the resend buffer is full, so no seq is ever skipped. */
  assertRoomForInput(): void {
    if (this.unacked.size >= this.options.maxUnackedChunks) {
      throw new ResourceExhaustedError(
        `${this.unacked.size} input chunks are waiting for the server's ack (limit ${this.options.maxUnackedChunks}); ` +
          "input is arriving faster than the server takes it",
        { retryable: true, sessionId: this.sessionId },
      );
    }
  }

  sendInput(chunk: InputChunk): void {
    this.assertOpenForSend();
    this.unacked.set(chunk.seq, chunk);
    if (this.state === "open") this.stream?.send({ eventId: "", event: { $case: "input", value: chunk } });
  }

  sendControl(event: NonNullable<ClientEvent["event"]>): void {
    this.assertOpenForSend();
    if (this.state === "open") this.stream?.send({ eventId: "", event });
    else this.pendingControl.push({ eventId: "", event });
  }

  /**
   * Sends SessionEnd and waits for the server to end the stream (or the timeout). The link closes with an error
   * when SessionEnded never came (unless timeoutMs is 0: the caller chose not to wait for it).
   */
  async end(reason: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (this.state === "closed" || this.state === "closing") return;
    const wasOpen = this.state === "open";
    this.state = "closing";
    let error: MicroturnError | undefined;
    if (wasOpen && this.stream) {
      const ended = new Promise<MicroturnError | undefined>((resolve) => (this.endWaiter = resolve));
      this.stream.send({ eventId: "", event: { $case: "end", value: { reason } } });
      this.stream.end();
      error = await race(ended, "waiting for SessionEnded", signal, timeoutMs).catch((failure: MicroturnError) => failure);
      if (this.endedSeen || timeoutMs === 0) error = undefined;
      else error ??= new ConnectionError("the stream ended without SessionEnded");
    }
    this.finish(error);
  }

  /** Tears everything down without telling the server (the session stays resumable there). */
  destroy(error?: MicroturnError): void {
    if (this.state === "closed") return;
    this.finish(error);
  }

  private assertOpenForSend(): void {
    if (this.state === "closed" || this.state === "closing" || this.state === "idle") {
      throw new SessionClosedError(`session is ${this.state}; no more events can be sent`);
    }
  }

  private openStream(first: NonNullable<ClientEvent["event"]>, timeoutMs: number, signal?: AbortSignal): Promise<SessionStarted> {
    const generation = ++this.generation;
    this.stream?.cancel();
    const waiting = new Promise<SessionStarted>((resolve, reject) => (this.waiter = { resolve, reject }));
    let stream: TransportStream;
    try {
      stream = this.transport.open({
        onEvent: (event) => this.onEvent(generation, event),
        onClose: (error) => this.onClose(generation, error),
      });
    } catch (error) {
      // A browser refuses ws:// from an https page by throwing (a SecurityError) rather than by closing the socket.
      this.waiter = undefined;
      if (MicroturnError.isInstance(error)) throw error;
      const reason = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
      throw new ConnectionError(`could not open the stream: ${reason}`, { cause: error });
    }
    this.stream = stream;
    stream.send({ eventId: "", event: first });
    return race(waiting, first.$case === "start" ? "session start" : "session resume", signal, timeoutMs).catch((error: unknown) => {
      if (this.generation === generation) this.waiter = undefined;
      if (this.stream === stream) stream.cancel();
      throw error;
    });
  }

  private onEvent(generation: number, event: ServerEvent): void {
    // Nothing follows SessionEnded: a server that sends more is not believed.
    if (generation !== this.generation || this.endedSeen) return;
    if (event.eventSeq > 0) {
      if (event.eventSeq <= this.lastEventSeq) return;
      this.lastEventSeq = event.eventSeq;
    }
    const body = event.event;
    if (!body) return;
    if (this.waiter) {
      const waiter = this.waiter;
      if (body.$case === "started") {
        this.waiter = undefined;
        if (!isCompatibleProtocol(body.value.protocolVersion)) {
          // Tell the server, so it frees the session now rather than after its resume grace.
          const stream = this.stream;
          this.stream = undefined;
          stream?.send({ eventId: "", event: { $case: "end", value: { reason: "protocol version mismatch" } } });
          stream?.end();
          waiter.reject(new ProtocolVersionError(PROTOCOL_VERSION, body.value.protocolVersion));
          return;
        }
        const resumed = this.state === "reconnecting";
        const resentChunks = this.opened(body.value);
        waiter.resolve(body.value);
        this.callbacks.event(event);
        if (resumed && this.state === "open") {
          this.callbacks.reconnected({ attempt: this.resumeAttempt, sessionId: this.sessionId, resentChunks });
        }
        return;
      } else if (body.$case === "error") {
        this.waiter = undefined;
        const typed = errorFromSessionError(body.value, { sessionId: this.sessionId });
        waiter.reject(body.value.code === ErrorCode.ERROR_CODE_VERSION_MISMATCH ? new ProtocolVersionError(PROTOCOL_VERSION, "") : typed);
        return;
      }
    }
    let typedError: SessionAPIError | undefined;
    switch (body.$case) {
      case "inputAck":
        this.unacked.delete(body.value.seq);
        break;
      case "error":
        typedError = errorFromSessionError(body.value, { sessionId: this.sessionId });
        if (body.value.fatal) this.fatal = typedError;
        else if (body.value.code === ErrorCode.ERROR_CODE_SEQ_GAP) this.resendFrom(body.value.seq);
        break;
      case "goAway":
        if (body.value.resumeToken) this.resumeToken = body.value.resumeToken;
        break;
      case "ended":
        this.endedSeen = true;
        break;
      default:
        break;
    }
    this.callbacks.event(event, typedError);
    if (body.$case === "goAway" && this.state === "open") void this.reconnect(undefined);
  }

  private onClose(generation: number, error: MicroturnError | undefined): void {
    if (generation !== this.generation) return;
    this.stream = undefined;
    if (this.waiter) {
      const waiter = this.waiter;
      this.waiter = undefined;
      waiter.reject(error ?? new ConnectionError("server closed the stream before the session started"));
      return;
    }
    if (this.state === "closing") return this.endWaiter?.(error);
    if (this.state !== "open") return;
    if (this.fatal) return this.finish(this.fatal);
    if (this.endedSeen) return this.finish(undefined);
    // A stream that ended cleanly without SessionEnded dropped all the same: the session did not end.
    const dropped = error ?? new ConnectionError("stream ended without SessionEnded");
    if (this.options.reconnect.enabled && isRetryableFailure(dropped)) {
      void this.reconnect(dropped);
    } else {
      this.finish(dropped);
    }
  }

  private async reconnect(cause: MicroturnError | undefined): Promise<void> {
    this.state = "reconnecting";
    const viaGoAway = cause === undefined;
    if (viaGoAway) {
      ++this.generation;
      // Cancelled, not half-closed: the server ends a session whose stream half-closes without a resume.
      this.stream?.cancel();
      this.stream = undefined;
      // A new connection, so a balancer can take the resume to another server (which takes the session over).
      this.transport.renew?.();
    }
    let lastError: MicroturnError | undefined = cause;
    const { maxAttempts } = this.options.reconnect;
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      const delayMs = viaGoAway && attempt === 1 ? 0 : backoffDelayMs(attempt, this.options.reconnect, this.options.random);
      this.callbacks.reconnecting({ attempt, delayMs, error: lastError });
      try {
        await sleep(delayMs, this.lifetime.signal);
        // After a failed attempt, or refused by a server that is draining or full: a new connection. A balancer can
        // take it to another server, and it does not wait out the old one's reconnect backoff (grpc-js waits a
        // second and more between connects after one failed: a server that died would use up the attempts).
        if (attempt > 1 || ResourceExhaustedError.isInstance(lastError)) this.transport.renew?.();
        this.resumeAttempt = attempt;
        // Resolved once SessionStarted arrived, by when opened() has resent what the server lacks and
        // `reconnected` was told; a GoAway read with it may already have begun the next resume.
        await this.openStream(
          { $case: "resume", value: { protocolVersion: PROTOCOL_VERSION, resumeToken: this.resumeToken, lastEventSeq: this.lastEventSeq } },
          this.options.reconnect.attemptTimeoutMs,
          this.lifetime.signal,
        );
        return;
      } catch (error) {
        if (this.lifetime.signal.aborted || this.state !== "reconnecting") return;
        lastError = error as MicroturnError;
        if (!isRetryableFailure(error) && !TimeoutError.isInstance(error)) return this.finish(lastError);
      }
    }
    this.finish(new ConnectionError(`could not resume the session after ${maxAttempts} attempts`, { cause: lastError }));
  }

  /**
   * SessionStarted arrived on the stream being opened: the link is open from
   * here, before the start or resume that waits for it goes on. After a
   * resume, chunks the server did not take and control events held meanwhile
   * go out again; returns how many chunks.
   */
  private opened(started: SessionStarted): number {
    if (started.sessionId) this.sessionId = started.sessionId;
    if (started.resumeToken) this.resumeToken = started.resumeToken;
    for (const seq of this.unacked.keys()) if (seq < started.nextInputSeq) this.unacked.delete(seq);
    this.state = "open";
    const resent = this.resendFrom(0);
    for (const event of this.pendingControl.splice(0)) this.stream?.send(event);
    return resent;
  }

  private resendFrom(fromSeq: number): number {
    let count = 0;
    const seqs = [...this.unacked.keys()].sort((a, b) => a - b);
    for (const seq of seqs) {
      if (seq < fromSeq) continue;
      this.stream?.send({ eventId: "", event: { $case: "input", value: this.unacked.get(seq)! } });
      count++;
    }
    return count;
  }

  private finish(error: MicroturnError | undefined): void {
    if (this.state === "closed") return;
    this.teardown();
    this.callbacks.closed(error);
  }

  private teardown(): void {
    this.state = "closed";
    this.lifetime.abort(new AbortError("session closed"));
    ++this.generation;
    this.stream?.cancel();
    this.stream = undefined;
    // A connect() still waiting for SessionStarted learns now, not when its timeout fires.
    this.waiter?.reject(new SessionClosedError("session closed while it was connecting"));
    this.waiter = undefined;
    this.unacked.clear();
    this.pendingControl.length = 0;
    this.transport.close();
  }
}
