// The sidecar's network face: the gRPC server (Interaction.Converse and the
// standard health service) and the HTTP server (/metrics, /healthz and the
// WebSocket form of Converse for browsers).
import { chmodSync, lstatSync, unlinkSync } from "node:fs";
import { createServer, type IncomingMessage, type RequestListener, type Server as HttpServer } from "node:http";
import { createServer as createHttpsServer, type Server as HttpsServer } from "node:https";
import { connect, isIPv4 } from "node:net";
import type { TLSSocket } from "node:tls";
import * as grpc from "@grpc/grpc-js";
import { ClientEvent, ErrorCode, grpcHealth, HandoffService, InteractionService, MAX_MESSAGE_BYTES, ServerEvent, SettleResult, type HandoffServer, type InteractionServer } from "@microturn/protocol";
import { WebSocketServer, type WebSocket } from "ws";
import { ConfigError } from "./config.js";
import { grpcStatusFor, toSessionError } from "./errors.js";
import { PEER_PROOF_HEADER } from "./handoff/peer-client.js";
import type { PeerKey } from "./handoff/peer-key.js";
import { healthService } from "./health.js";
import type { Logger } from "./logger.js";
import type { SidecarMetrics } from "./metrics.js";
import { ConverseStream, type EventChannel } from "./session/converse.js";
import type { SessionHub } from "./session/session-hub.js";
import { waitAtMost } from "./timers.js";
import { secureContextOptions, tlsMode, type TlsMaterial } from "./tls.js";

/**
 * Server events are encoded with one writer reused for the process (encoding
 * is synchronous) and handed over without a copy: the generated serializer
 * grows a fresh writer and copies its bytes twice for every event.
 */
type Writer = ReturnType<typeof ServerEvent.encode>;
const writer: Writer = ServerEvent.encode(ServerEvent.fromPartial({}));
writer.finish();

export function encodeServerEvent(event: ServerEvent): Buffer {
  let bytes: Uint8Array;
  try {
    bytes = ServerEvent.encode(event, writer).finish();
  } catch (err) {
    writer.finish(); // what a failed encode left half written must not lead the next event
    // A value the wire cannot carry (a bug upstream) must not end the stream: grpc-js would cut it with
    // "Error serializing response". The client gets an error in the event's place (same event_seq) instead.
    bytes = ServerEvent.encode(unencodable(event, err), writer).finish();
  }
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function unencodable(event: ServerEvent, err: unknown): ServerEvent {
  const message = `internal: the server could not encode its ${event.event?.$case ?? "blank"} event (${err instanceof Error ? err.message : String(err)})`;
  return { eventSeq: event.eventSeq, event: { $case: "error", value: { code: ErrorCode.ERROR_CODE_INTERNAL, message, retryable: false, seq: 0, eventId: "", fatal: false } } };
}

/** host:port as gRPC targets and logs write it: an IPv6 address in brackets. */
export function hostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Why a listen failed, in a few words: the errno's code where there is one (grpc-js folds it into its message). */
function listenFailure(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const code = (err as NodeJS.ErrnoException)?.code ?? /\b(E[A-Z]{4,})\b/.exec(message)?.[1];
  if (code === "EADDRINUSE") return "the port is in use";
  if (code === "EADDRNOTAVAIL") return "no interface of this host has that address";
  if (code === "EACCES") return "not allowed to listen on that port";
  if (/Name resolution failed|ENOTFOUND|EAI_AGAIN/.test(message)) return "the host name does not resolve";
  return message;
}

/** A frame that is not a ClientEvent, kept for the stream to answer with an error instead of grpc-js cutting it. */
class MalformedFrame {
  constructor(readonly reason: string) {}
}

function decodeClientEvent(bytes: Buffer): ClientEvent | MalformedFrame {
  try {
    return ClientEvent.decode(bytes);
  } catch (err) {
    return new MalformedFrame(err instanceof Error ? err.message : String(err));
  }
}

const ConverseService = {
  ...InteractionService,
  converse: { ...InteractionService.converse, requestDeserialize: decodeClientEvent, responseSerialize: encodeServerEvent },
};

export const WEBSOCKET_PATH = "/v1/converse";
export const WEBSOCKET_PROTOCOL = "microturn.v1";

export interface ServerOptions {
  hub: SessionHub;
  logger: Logger;
  metrics: SidecarMetrics;
  apiKey: string;
  /** Both servers speak TLS with this material (mutual TLS when it has a client CA); plaintext without. */
  tls?: TlsMaterial;
  host: string;
  port: number;
  /** A Unix socket path gRPC is served on too, in plaintext (file permissions guard it). */
  socketPath?: string;
  /** -1: no HTTP server. */
  httpPort: number;
  /** Web origins whose pages may open WebSocket sessions, as parseAllowedOrigins gives them ("*": any); none: see originAllowed. */
  allowedOrigins?: readonly string[];
  isServing: () => boolean;
  /** Serves Handoff.Take to the sidecars that share this key: they take the sessions their clients resumed on them. */
  peerKey?: PeerKey;
  /** HTTP/2 keepalive: ping after `timeMs` without a frame, drop the connection after `timeoutMs` more. */
  keepalive?: { timeMs: number; timeoutMs: number };
}

export interface RunningServer {
  grpcAddress: string;
  httpAddress: string | undefined;
  /** The Unix socket gRPC is served on too, if any. */
  socketPath: string | undefined;
  /** "off", "tls" or "mtls" (client certificates required). */
  tls: "off" | "tls" | "mtls";
  /**
   * Serves new TLS material (a renewed certificate, say) on both servers from
   * the next handshake on; connections already open keep theirs. The mode
   * stays what the server started with: turning TLS or mutual TLS on or off
   * takes a restart, and material that would is refused with a ConfigError.
   */
  updateTls(material: TlsMaterial): void;
  /** isServing() may answer otherwise now: health watchers hear of it. */
  servingChanged(): void;
  /** Stops accepting streams and closes both servers (live streams are cut). */
  close(): Promise<void>;
}

/**
 * Server credentials whose certificate can change while the server runs:
 * grpc-js hands each update to its HTTP/2 server's setSecureContext. Built as
 * createSsl builds its own: client certificates asked for and required under
 * mutual TLS, and grpc-js' GRPC_SSL_CIPHER_SUITES honoured.
 */
class ReloadableServerCredentials extends grpc.ServerCredentials {
  constructor(material: TlsMaterial) {
    const mutual = material.clientCa !== undefined;
    super({ requestCert: mutual, rejectUnauthorized: mutual }, ReloadableServerCredentials.context(material));
  }

  /** The ciphers go with every context: setSecureContext resets what the new one leaves out. */
  static context(material: TlsMaterial) {
    const ciphers = process.env.GRPC_SSL_CIPHER_SUITES;
    return { ...secureContextOptions(material), ...(ciphers ? { ciphers } : {}) };
  }

  update(material: TlsMaterial): void {
    this.updateSecureContextOptions(ReloadableServerCredentials.context(material));
  }

  _equals(other: grpc.ServerCredentials): boolean {
    return this === other;
  }
}

/**
 * Makes `path` free for a Unix socket server: nothing there, or a socket no
 * process listens on (one a crashed sidecar left) is removed. A socket another
 * process serves on, or a file that is no socket, is refused with a ConfigError.
 */
async function claimSocketPath(path: string): Promise<void> {
  let stats;
  try {
    stats = lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw err;
  }
  if (!stats.isSocket()) throw new ConfigError(`--socket ${path}: a file that is not a socket is there; remove it or choose another path`);
  const live = await new Promise<boolean>((resolve) => {
    const probe = connect(path);
    probe.once("connect", () => {
      probe.destroy();
      resolve(true);
    });
    probe.once("error", () => resolve(false));
  });
  if (live) throw new ConfigError(`--socket ${path}: another process serves on it`);
  unlinkSync(path);
}

/**
 * Whether a WebSocket handshake's Origin may open a session. Browsers send the
 * page's origin and let no page forge it, so a page of another site (or one
 * that rebinds its DNS name to 127.0.0.1) is told apart from a loopback page;
 * clients that send none are not browsers, and no web page can make them
 * connect. Without a list: loopback pages, or any page when an API key is set
 * (then the key, not the page, is what lets a client in).
 */
function originAllowed(origin: string | undefined, allowed: readonly string[], keyed: boolean): boolean {
  if (origin === undefined) return true;
  if (allowed.length > 0) return allowed.includes("*") || allowed.includes(origin);
  return keyed || isLoopbackOrigin(origin);
}

function isLoopbackOrigin(origin: string): boolean {
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false; // "null": a sandboxed frame or a file:// page
  }
  const host = url.hostname;
  // Browsers take *.localhost as loopback too; [::ffff:127.x.y.z] is written back as [::ffff:7fxx:xxxx].
  const loopback = host === "localhost" || host.endsWith(".localhost") || host === "[::1]" || (isIPv4(host) && host.startsWith("127.")) || /^\[::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}\]$/.test(host);
  return (url.protocol === "http:" || url.protocol === "https:") && loopback;
}

/** Distinct refused origins logged; Origin is whatever text a non-browser client makes up, so the log is bounded. */
const MAX_LOGGED_ORIGINS = 100;

function bearer(value: string | undefined): string | undefined {
  return value?.startsWith("Bearer ") ? value.slice(7) : undefined;
}

/**
 * The server pings each connection after 20 s without a frame and drops it
 * when no answer comes in 10 s: a client that vanished without closing its
 * socket is noticed within 30 s, and its session waits for resume with every
 * event kept from then on (an attached session keeps only its last 60 s).
 */
const KEEPALIVE = { timeMs: 20_000, timeoutMs: 10_000 };

/**
 * How long the end of a stream's input waits for a cancel before it counts as
 * a half-close (which ends the session). A client that cancels its stream and
 * drops the connection at once (the SDK after a GoAway) can show the end of its
 * input first; taken for a half-close, that ended sessions that were about to
 * resume elsewhere (bench:handoff, 100 sessions moving on 2 cores: 7-15 lost in
 * 4 of 7 runs).
 */
const HALF_CLOSE_SETTLE_MS = 250;

export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const { hub, logger, metrics } = opts;
  const keepalive = opts.keepalive ?? KEEPALIVE;
  const server = new grpc.Server({
    "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
    "grpc.keepalive_time_ms": keepalive.timeMs,
    "grpc.keepalive_timeout_ms": keepalive.timeoutMs,
  });

  const converse: InteractionServer["converse"] = (call) => {
    if (opts.apiKey && bearer(call.metadata.get("authorization")[0]?.toString()) !== opts.apiKey) {
      call.emit("error", { code: grpc.status.UNAUTHENTICATED, details: "missing or wrong API key: send metadata authorization: Bearer <MICROTURN_API_KEY>" });
      return;
    }
    let open = true;
    const channel: EventChannel = {
      send: (event) => {
        if (open) call.write(event);
      },
      end: (error?: { code: ErrorCode; message: string }) => {
        if (!open) return;
        open = false;
        if (error) call.emit("error", { code: grpcStatusFor(error.code), details: error.message });
        else call.end();
      },
    };
    const stream = new ConverseStream(hub, channel, logger);
    metrics.streamOpened();
    let closed = false;
    const onClose = () => {
      if (closed) return;
      closed = true;
      open = false;
      metrics.streamClosed();
      stream.onClose();
    };
    call.on("data", (event: ClientEvent | MalformedFrame) => void (event instanceof MalformedFrame ? stream.onMalformed(event.reason) : stream.onEvent(event)));
    // Half-close: the client still reads until the session ends. A cancelled call, or one whose
    // connection went away, also ends its readable side, and under load its cancel can show later
    // than that: only an end that no cancel or close follows within HALF_CLOSE_SETTLE_MS ends the session.
    call.on("end", () => {
      setTimeout(() => {
        if (!call.cancelled && !closed) void stream.onHalfClose();
      }, HALF_CLOSE_SETTLE_MS).unref();
    });
    call.on("error", onClose);
    call.on("cancelled", onClose);
    call.on("close", onClose);
  };
  server.addService(ConverseService, { converse });

  const peerKey = opts.peerKey;
  if (peerKey) {
    const take: HandoffServer["take"] = (call, callback) => {
      const { resumeToken, lastEventSeq, takerUrl, settles } = call.request;
      if (!peerKey.checkTakeProof(resumeToken, call.metadata.get(PEER_PROOF_HEADER)[0]?.toString())) {
        logger.warn("Take refused: the caller does not hold this sidecar's peer key", { taker: takerUrl, peer: call.getPeer() });
        callback({ code: grpc.status.UNAUTHENTICATED, details: `Take needs metadata ${PEER_PROOF_HEADER} made with this deployment's peer key` });
        return;
      }
      hub.handOff(resumeToken, lastEventSeq, takerUrl, settles).then(
        (result) => callback(null, "movedTo" in result ? { movedTo: result.movedTo, handoverId: "" } : { snapshot: result.snapshot, handoverId: result.handoverId, movedTo: "" }),
        (err: unknown) => {
          const error = toSessionError(err);
          callback({ code: grpcStatusFor(error.code), details: error.message });
        },
      );
    };
    const settle: HandoffServer["settle"] = (call, callback) => {
      const { settlements, takerUrl } = call.request;
      let refused = 0;
      const outcomes = settlements.map(({ resumeToken, handoverId, proof }) => {
        if (!peerKey.checkTakeProof(resumeToken, proof)) {
          refused++;
          return { result: SettleResult.SETTLE_RESULT_UNAUTHENTICATED, reason: "the settlement's proof was not made with this deployment's peer key" };
        }
        const settled = hub.settle(resumeToken, handoverId, takerUrl);
        if (settled.result === "settled") return { result: SettleResult.SETTLE_RESULT_SETTLED, reason: "" };
        return { result: settled.result === "refused" ? SettleResult.SETTLE_RESULT_REFUSED : SettleResult.SETTLE_RESULT_UNKNOWN, reason: settled.why };
      });
      if (refused > 0) logger.warn("settlements refused: the caller does not hold this sidecar's peer key", { taker: takerUrl, peer: call.getPeer(), refused });
      callback(null, { outcomes });
    };
    server.addService(HandoffService, { take, settle });
  }

  const services = [InteractionService.converse.path.split("/")[1]!, ...(peerKey ? [HandoffService.take.path.split("/")[1]!] : [])];
  const health = healthService(opts.isServing, services);
  server.addService(grpcHealth.HealthService, health.impl);

  const credentials = opts.tls ? new ReloadableServerCredentials(opts.tls) : undefined;
  let grpcPort: number;
  try {
    grpcPort = await new Promise<number>((resolve, reject) =>
      server.bindAsync(hostPort(opts.host, opts.port), credentials ?? grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
    );
  } catch (err) {
    throw new ConfigError(`--host / --port (MICROTURN_HOST / MICROTURN_PORT): cannot serve gRPC on ${hostPort(opts.host, opts.port)} (${listenFailure(err)})`);
  }
  const grpcAddress = hostPort(opts.host, grpcPort);
  if (opts.socketPath) {
    try {
      await claimSocketPath(opts.socketPath);
      await new Promise<void>((resolve, reject) =>
        server.bindAsync(`unix:${opts.socketPath}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
      );
      // Owner and group: a client container or user in the sidecar's group connects, others do not.
      chmodSync(opts.socketPath, 0o660);
    } catch (err) {
      server.forceShutdown();
      throw err instanceof ConfigError ? err : new ConfigError(`--socket ${opts.socketPath}: cannot serve on it (${(err as Error).message})`);
    }
  }

  let http: HttpServer | HttpsServer | undefined;
  let wss: WebSocketServer | undefined;
  let httpAddress: string | undefined;
  if (opts.httpPort >= 0) {
    const listener: RequestListener = (req, res) => {
      // Mutual TLS: /healthz answers anyone (probes carry no certificate), the session count only to
      // a client with a signed one; the rest wants a signed one.
      const anonymous = opts.tls?.clientCa !== undefined && !(req.socket as TLSSocket).authorized;
      if (anonymous && req.url !== "/healthz") {
        res.writeHead(403, { "content-type": "text/plain" });
        res.end("client certificate required\n");
        return;
      }
      if (req.url === "/metrics") {
        metrics.render().then(
          (body) => {
            res.writeHead(200, { "content-type": metrics.contentType });
            res.end(body);
          },
          (err: unknown) => {
            logger.warn("metrics render failed", { error: String(err) });
            res.writeHead(500, { "content-type": "text/plain" });
            res.end("metrics unavailable\n");
          },
        );
      } else if (req.url === "/healthz") {
        const serving = opts.isServing();
        res.writeHead(serving ? 200 : 503, { "content-type": "application/json" });
        res.end(JSON.stringify(anonymous ? { serving } : { serving, sessions: hub.size }));
      } else {
        res.writeHead(404, { "content-type": "text/plain" });
        res.end(`not found; see /metrics, /healthz, ws ${WEBSOCKET_PATH}\n`);
      }
    };
    const tls = opts.tls;
    http = tls
      ? createHttpsServer({ ...secureContextOptions(tls), ...(tls.clientCa ? { requestCert: true, rejectUnauthorized: false } : {}) }, listener)
      : createServer(listener);
    wss = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE_BYTES, handleProtocols: (protocols) => (protocols.has(WEBSOCKET_PROTOCOL) ? WEBSOCKET_PROTOCOL : false) });
    const allowedOrigins = opts.allowedOrigins ?? [];
    const loggedOrigins = new Set<string>();
    http.on("upgrade", (req: IncomingMessage, socket, head) => {
      // Node takes its own error listener off an upgraded socket: without one a reset would end the process.
      socket.on("error", () => socket.destroy());
      const refuse = (status: string) => {
        socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\n\r\n`, () => socket.destroy());
      };
      let url: URL;
      try {
        url = new URL(req.url ?? "/", "http://localhost");
      } catch {
        return refuse("400 Bad Request");
      }
      if (url.pathname !== WEBSOCKET_PATH) return refuse("404 Not Found");
      const origin = req.headers.origin;
      if (!originAllowed(origin, allowedOrigins, opts.apiKey !== "")) {
        // A page of another site is no client of ours: no handshake for it, one log line per origin for the operator.
        const shown = origin!.slice(0, 200);
        if (!loggedOrigins.has(shown) && loggedOrigins.size < MAX_LOGGED_ORIGINS) {
          loggedOrigins.add(shown);
          logger.warn("WebSocket refused: a web page of an origin not allowed (--allowed-origins / MICROTURN_ALLOWED_ORIGINS)", { origin: shown });
        }
        return refuse("403 Forbidden");
      }
      // Refused credentials complete the handshake and close with 4000 + gRPC status, as a stream's end does:
      // a browser learns nothing of a refused upgrade but 1006, which the SDK retries as an unreachable sidecar.
      const key = url.searchParams.get("api_key") ?? bearer(req.headers.authorization);
      const denied =
        opts.tls?.clientCa && !(socket as TLSSocket).authorized
          ? { code: 4000 + grpc.status.PERMISSION_DENIED, reason: "client certificate required, signed by the sidecar's client CA" }
          : opts.apiKey && key !== opts.apiKey
            ? { code: 4000 + grpc.status.UNAUTHENTICATED, reason: "missing or wrong API key: add ?api_key=<MICROTURN_API_KEY> to the URL" }
            : undefined;
      wss!.handleUpgrade(req, socket, head, (ws) => (denied ? ws.close(denied.code, denied.reason) : serveWebSocket(ws, hub, logger, metrics, keepalive.timeMs)));
    });
    try {
      await new Promise<void>((resolve, reject) => {
        http!.once("error", reject);
        http!.listen(opts.httpPort, opts.host, () => resolve());
      });
    } catch (err) {
      // The gRPC server is already serving: a sidecar that cannot start whole must not half run.
      server.forceShutdown();
      throw new ConfigError(
        `--metrics-port / MICROTURN_METRICS_PORT: cannot serve HTTP (metrics, health, WebSocket) on ${hostPort(opts.host, opts.httpPort)} (${listenFailure(err)}); -1 turns it off`,
      );
    }
    const addr = http.address();
    httpAddress = typeof addr === "object" && addr ? hostPort(opts.host, addr.port) : undefined;
  }

  const mode = tlsMode(opts.tls);
  return {
    grpcAddress,
    httpAddress,
    socketPath: opts.socketPath,
    tls: mode,
    updateTls(material) {
      if (tlsMode(material) !== mode) {
        throw new ConfigError(`the sidecar serves ${mode === "off" ? "plaintext" : mode === "tls" ? "TLS without client certificates" : "mutual TLS"}; new material for ${tlsMode(material) === "mtls" ? "mutual TLS" : "TLS without client certificates"} takes a restart`);
      }
      // The HTTPS server first: it throws on material TLS cannot use (loadTls has checked, but should it
      // pass anyway), where grpc-js would swallow the error and refuse every new connection.
      (http as HttpsServer | undefined)?.setSecureContext(secureContextOptions(material));
      credentials!.update(material);
    },
    servingChanged() {
      health.changed();
    },
    async close() {
      health.close();
      wss?.clients.forEach((ws) => ws.terminate());
      await Promise.all([
        // Streams still open after a short grace are cut; resume tokens were sent by drain.
        waitAtMost(new Promise<void>((resolve) => server.tryShutdown(() => resolve())), 1000).then(() => server.forceShutdown()),
        http ? new Promise<void>((resolve) => http!.close(() => resolve())) : Promise.resolve(),
      ]);
    },
  };
}

/** WebSocket allows a close reason of 123 bytes; longer ones (client text in the message, any script) are cut at a character. */
export function closeReason(message: string): string {
  if (Buffer.byteLength(message) <= 123) return message;
  let end = Math.min(message.length, 123);
  while (Buffer.byteLength(message.slice(0, end)) > 120) end--;
  // Never split a surrogate pair.
  if (end > 0 && /[\uD800-\uDBFF]/.test(message[end - 1]!)) end--;
  return `${message.slice(0, end)}…`;
}

/**
 * Converse over WebSocket: each binary message is one protobuf ClientEvent / ServerEvent.
 * A ping goes out every `pingEveryMs`; a client that did not answer the last one
 * (browsers answer on their own) is cut, so its session waits for resume.
 */
function serveWebSocket(ws: WebSocket, hub: SessionHub, logger: Logger, metrics: SidecarMetrics, pingEveryMs: number): void {
  let answered = true;
  ws.on("pong", () => (answered = true));
  const heartbeat = setInterval(() => {
    if (!answered) return ws.terminate();
    answered = false;
    ws.ping();
  }, pingEveryMs);
  heartbeat.unref();
  const channel: EventChannel = {
    send: (event) => {
      if (ws.readyState === ws.OPEN) ws.send(encodeServerEvent(event));
    },
    end: (error) => {
      // 4000 + gRPC status keeps the code readable on the browser side.
      if (error) ws.close(4000 + grpcStatusFor(error.code), closeReason(error.message));
      else ws.close(1000, "session ended");
    },
  };
  const stream = new ConverseStream(hub, channel, logger);
  metrics.streamOpened();
  ws.on("message", (data, isBinary) => {
    if (!isBinary) {
      void stream.onMalformed("a text frame (send binary protobuf ClientEvent frames)");
      return;
    }
    const event = decodeClientEvent(Buffer.isBuffer(data) ? data : Buffer.concat(data as Buffer[]));
    void (event instanceof MalformedFrame ? stream.onMalformed(event.reason) : stream.onEvent(event));
  });
  ws.on("close", () => {
    clearInterval(heartbeat);
    metrics.streamClosed();
    stream.onClose();
  });
  ws.on("error", () => undefined);
}
