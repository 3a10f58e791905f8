// A scripted in-process sidecar speaking microturn.v1.Interaction/Converse
// over real gRPC on loopback (and optionally WebSocket), following the
// proto's session semantics: start/resume, contiguous seqs with duplicate
// acks and gap errors, event_seq history replayed on resume, GoAway, tool
// calls, background tasks. The model is a script (`reply`), not an engine.
import { Server, ServerCredentials, status as GrpcStatus, type ServerDuplexStream } from "@grpc/grpc-js";
import {
  type ClientEvent,
  ErrorCode,
  InteractionService,
  isCompatibleProtocol,
  MAX_MESSAGE_BYTES,
  PROTOCOL_VERSION,
  type ServerEvent,
  type SessionConfig,
  type SessionStarted,
} from "@microturn/protocol";
import { FakeSession, type FakeSessionScript } from "./fake-session.js";
import { attachWebSocketServer, type WebSocketServerConstructor } from "./fake-websocket.js";

export interface FakeSidecarOptions extends FakeSessionScript {
  /** Port to bind on 127.0.0.1; 0 picks a free one. */
  port?: number;
  /** When set, streams without `authorization: Bearer <apiKey>` fail with UNAUTHENTICATED. */
  apiKey?: string;
  /** Version announced in SessionStarted (test a client against another major). */
  protocolVersion?: string;
  /** Also serve WebSocket (pass `WebSocketServer` from the `ws` package). */
  webSocketServer?: WebSocketServerConstructor;
}

/** One open stream as the session logic sees it, whatever carries it. */
export interface FakePeer {
  send(event: ServerEvent): void;
  /** Ends the stream cleanly. */
  end(): void;
  /** Ends the stream with a failure status. */
  fail(code: number, message: string): void;
}

export class FakeSidecar {
  readonly sessions = new Map<string, FakeSession>();
  /** `grpc://127.0.0.1:<port>` */
  url = "";
  /** `ws://127.0.0.1:<port>/v1/converse` when WebSocket is served. */
  wsUrl = "";
  /** Streams opened so far (start and resume). */
  streamsOpened = 0;
  // The sidecar's limit on one message, as the real server has it.
  private readonly server = new Server({ "grpc.max_receive_message_length": MAX_MESSAGE_BYTES });
  private closeWebSocket: (() => Promise<void>) | undefined;
  private nextId = 1;

  constructor(readonly options: FakeSidecarOptions = {}) {}

  async listen(): Promise<this> {
    this.server.addService(InteractionService, {
      converse: (call: ServerDuplexStream<ClientEvent, ServerEvent>) => this.onGrpcStream(call),
    });
    const port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync(`127.0.0.1:${this.options.port ?? 0}`, ServerCredentials.createInsecure(), (error, bound) =>
        error ? reject(error) : resolve(bound),
      ),
    );
    this.url = `grpc://127.0.0.1:${port}`;
    if (this.options.webSocketServer) {
      const ws = await attachWebSocketServer(this, this.options.webSocketServer);
      this.wsUrl = ws.url;
      this.closeWebSocket = ws.close;
    }
    return this;
  }

  /** The only (or most recent) session. */
  session(id?: string): FakeSession {
    const session = id ? this.sessions.get(id) : [...this.sessions.values()].at(-1);
    if (!session) throw new Error(id ? `fake sidecar has no session ${id}` : "fake sidecar has no session yet");
    return session;
  }

  /** Kills a session's stream as a crashing network path would (status UNAVAILABLE); the session stays resumable. */
  dropStream(sessionId?: string, code: number = GrpcStatus.UNAVAILABLE): void {
    this.session(sessionId).detach((peer) => peer.fail(code, "fake sidecar dropped the stream"));
  }

  /** Sends GoAway with a fresh resume token, then closes the stream after `deadlineMs`. */
  goAway(sessionId?: string, options: { reason?: string; deadlineMs?: number } = {}): void {
    const session = this.session(sessionId);
    const peer = session.peer;
    session.resumeToken = `${session.id}-token-${this.nextId++}`;
    session.send({ $case: "goAway", value: { reason: options.reason ?? "drain", resumeToken: session.resumeToken, deadlineMs: options.deadlineMs ?? 50 } });
    setTimeout(() => {
      if (session.peer === peer) session.detach((p) => p.end());
      else peer?.end();
    }, options.deadlineMs ?? 50);
  }

  /** Resolves when `predicate` holds, polling every 5 ms. */
  async waitFor(predicate: () => boolean, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      if (Date.now() > deadline) throw new Error(`fake sidecar: condition not met within ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  /** Ends every stream cleanly and stops listening. */
  async close(): Promise<void> {
    for (const session of this.sessions.values()) {
      session.stop();
      session.detach((peer) => peer.end());
    }
    await this.closeWebSocket?.();
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, 1000);
      this.server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
  }

  /** Stops at once, as a crashed process would: open streams fail with UNAVAILABLE. */
  async kill(): Promise<void> {
    for (const session of this.sessions.values()) session.stop();
    this.server.forceShutdown();
    await this.closeWebSocket?.();
  }

  /** Serves one stream from any carrier; returns the carrier's callbacks. */
  handlePeer(peer: FakePeer, apiKey: string | undefined): { onEvent(event: ClientEvent): void; onClose(): void } {
    this.streamsOpened++;
    if (this.options.apiKey !== undefined && apiKey !== this.options.apiKey) {
      queueMicrotask(() => peer.fail(GrpcStatus.UNAUTHENTICATED, "missing or wrong API key"));
      return { onEvent: () => undefined, onClose: () => undefined };
    }
    let session: FakeSession | undefined;
    return {
      onEvent: (event) => {
        const body = event.event;
        if (!body) return;
        if (!session) {
          session = this.open(peer, body);
          return;
        }
        session.received.push(event);
        session.onClientEvent(body);
      },
      onClose: () => {
        if (session?.peer === peer) session.detach();
      },
    };
  }

  private open(peer: FakePeer, body: NonNullable<ClientEvent["event"]>): FakeSession | undefined {
    const fatal = (code: ErrorCode, message: string): undefined => {
      peer.send({ eventSeq: 0, event: { $case: "error", value: { code, message, retryable: false, seq: 0, eventId: "", fatal: true } } });
      peer.end();
      return undefined;
    };
    if (body.$case === "start") {
      if (!isCompatibleProtocol(body.value.protocolVersion)) {
        return fatal(ErrorCode.ERROR_CODE_VERSION_MISMATCH, `server speaks ${PROTOCOL_VERSION}, client ${body.value.protocolVersion}`);
      }
      const id = `fake-${this.nextId++}`;
      const session = new FakeSession(id, `${id}-token-${this.nextId++}`, body.value.config ?? emptyConfig(), this.options);
      this.sessions.set(id, session);
      session.attach(peer);
      session.send({ $case: "started", value: this.started(session, false) });
      return session;
    }
    if (body.$case === "resume") {
      const session = [...this.sessions.values()].find((s) => s.resumeToken === body.value.resumeToken && !s.ended);
      if (!session) return fatal(ErrorCode.ERROR_CODE_NOT_FOUND, "no session for this resume token (expired or unknown)");
      session.detach((old) => old.end());
      session.resumes++;
      session.attach(peer);
      peer.send({
        eventSeq: 0,
        event: { $case: "started", value: this.started(session, true) },
      });
      for (const past of session.history) if (past.eventSeq > body.value.lastEventSeq) peer.send(past);
      return session;
    }
    return fatal(ErrorCode.ERROR_CODE_FAILED_PRECONDITION, `first event must be start or resume, got ${body.$case}`);
  }

  private started(session: FakeSession, resumed: boolean): SessionStarted {
    return {
      sessionId: session.id,
      resumeToken: session.resumeToken,
      protocolVersion: this.options.protocolVersion ?? PROTOCOL_VERSION,
      capabilities: undefined,
      resumeGraceMs: 30_000,
      resumed,
      nextInputSeq: resumed ? session.expectedSeq : 0,
      // The sidecar's default budget when the config asks for none; the fake sets no ceiling.
      maxOutputTokensPerTurn: session.config.maxOutputTokensPerTurn || 6,
    };
  }

  private onGrpcStream(call: ServerDuplexStream<ClientEvent, ServerEvent>): void {
    const auth = call.metadata.get("authorization")[0];
    const apiKey = typeof auth === "string" && auth.startsWith("Bearer ") ? auth.slice(7) : undefined;
    let open = true;
    const peer: FakePeer = {
      send: (event) => {
        if (open) call.write(event);
      },
      end: () => {
        if (!open) return;
        open = false;
        call.end();
      },
      fail: (code, message) => {
        if (!open) return;
        open = false;
        call.emit("error", { code, details: message, message });
      },
    };
    const handlers = this.handlePeer(peer, apiKey);
    call.on("data", (event: ClientEvent) => {
      if (open) handlers.onEvent(event);
    });
    call.on("end", () => peer.end());
    call.on("error", () => undefined);
    call.on("close", () => {
      open = false;
      handlers.onClose();
    });
    call.on("cancelled", () => {
      open = false;
      handlers.onClose();
    });
  }
}

/** Starts a fake sidecar on 127.0.0.1 (a free port unless `port` is given). */
export async function startFakeSidecar(options: FakeSidecarOptions = {}): Promise<FakeSidecar> {
  return new FakeSidecar(options).listen();
}

function emptyConfig(): SessionConfig {
  return {
    inputModalities: [],
    outputMode: 0,
    inputSampleRateHz: 0,
    outputSampleRateHz: 0,
    voice: "",
    instructions: "",
    tools: [],
    defaultDelivery: 0,
    maxOutputTokensPerTurn: 0,
    chunkDurationMs: 0,
    unsupportedInput: 0,
    labels: {},
    record: false,
  };
}

export { FakeSession, type FakeSessionScript };
