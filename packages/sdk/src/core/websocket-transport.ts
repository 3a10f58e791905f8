// Converse over WebSocket for browsers: each binary message is one
// protobuf-encoded ClientEvent / ServerEvent, subprotocol `microturn.v1`, the
// API key in the `api_key` query parameter (browsers cannot set headers).
// A server closes with 1000 for a clean end, or 4000 + gRPC code with the
// message as the reason. A watchdog stands in for the keepalive pings a
// browser cannot send (see `ackTimeoutMs`).
import { ClientEvent, ServerEvent } from "@microturn/protocol";
import { ConnectionError, type MicroturnError } from "./error.js";
import { errorFromGrpcStatus, GrpcCode, messageTooLargeError } from "./grpc-error.js";
import type { Transport, TransportHandlers, TransportStream } from "./transport.js";
import { MAX_TIMER_MS, optionNumber } from "../internal/validate.js";

export const WEBSOCKET_SUBPROTOCOL = "microturn.v1";
export const WEBSOCKET_PATH = "/v1/converse";

/** The slice of the WHATWG WebSocket the transport uses (browsers, undici, the `ws` package). */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  /** Bytes sent and not yet handed to the network (browsers and `ws` have it). */
  readonly bufferedAmount?: number;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}

/** A WebSocket class; the third argument is the `ws` package's options (TLS), which Node passes. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[], options?: WebSocketTlsOptions) => WebSocketLike;

/** TLS for wss:// in Node, as the `ws` package takes it: PEM `ca`, and `cert` with `key` for mutual TLS. */
export interface WebSocketTlsOptions {
  ca?: string | Uint8Array;
  cert?: string | Uint8Array;
  key?: string | Uint8Array;
}

export interface WebSocketTransportOptions {
  /** `ws://host:port[/path]` or `wss://…`; the path defaults to /v1/converse. */
  url: string;
  apiKey?: string;
  /** Defaults to globalThis.WebSocket. */
  WebSocket?: WebSocketConstructor;
  /** Passed to the WebSocket class as its options (a wss:// URL, the `ws` package's class). */
  tls?: WebSocketTlsOptions;
  /**
   * While input chunks wait for their ack, the longest silence (no server event at all) before the connection is
   * taken for dead and the stream fails with a retryable UnavailableError, which starts a resume. Browsers cannot
   * send WebSocket pings, so a proxy or NAT that stops forwarding without closing is noticed only this way. Silence
   * with nothing awaiting an ack is never a failure. In ms; default 15000; 0 or Infinity turns it off.
   */
  ackTimeoutMs?: number;
}

export const DEFAULT_ACK_TIMEOUT_MS = 15_000;

/** The watchdog's wait (WebSocketTransportOptions.ackTimeoutMs), checked; 0 when it is off. Throws InvalidInputError. */
export function resolveAckTimeoutMs(value: number | undefined): number {
  const ms = optionNumber(value, "ackTimeoutMs", DEFAULT_ACK_TIMEOUT_MS, { min: 0, max: MAX_TIMER_MS, infinite: true });
  return ms === Number.POSITIVE_INFINITY ? 0 : ms;
}

const OPEN = 1;

/**
 * Close codes that mean the server could not be reached or went away: 1001 going away, 1006 closed without a
 * close frame (refused, dropped), 1012 restarting, 1013 try again later, 1014 bad gateway. They map to
 * UnavailableError, as gRPC's UNAVAILABLE does, so an app checks one class whatever the transport.
 */
const UNREACHABLE_CLOSE_CODES = new Set([1001, 1006, 1012, 1013, 1014]);

/** 1009: a message exceeded the peer's limit. Resending it after a resume would fail the same way. */
const MESSAGE_TOO_BIG = 1009;

export function closeCodeError(code: number, reason: string): MicroturnError | undefined {
  if (code === 1000) return undefined;
  if (code >= 4000 && code <= 4016) return errorFromGrpcStatus({ code: code - 4000, details: reason });
  const message = `WebSocket closed with code ${code}${reason ? `: ${reason}` : ""}`;
  if (UNREACHABLE_CLOSE_CODES.has(code)) return errorFromGrpcStatus({ code: GrpcCode.UNAVAILABLE, details: message });
  if (code === MESSAGE_TOO_BIG) return messageTooLargeError(`${message} (an event over the peer's size limit; sent again, it would fail again)`);
  return new ConnectionError(message);
}

export class WebSocketTransport implements Transport {
  private readonly url: string;
  private readonly WebSocketCtor: WebSocketConstructor;
  private readonly tls: WebSocketTlsOptions | undefined;
  /** Each open socket with the call that cancels its stream. */
  private readonly sockets = new Map<WebSocketLike, (reason: string) => void>();
  private readonly ackTimeoutMs: number;

  constructor(options: WebSocketTransportOptions) {
    const ctor = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!ctor) {
      throw new ConnectionError(
        "no WebSocket implementation: this runtime lacks globalThis.WebSocket; pass the `WebSocket` option (e.g. from the `ws` package)",
      );
    }
    this.WebSocketCtor = ctor;
    this.tls = options.tls;
    this.ackTimeoutMs = resolveAckTimeoutMs(options.ackTimeoutMs);
    const url = new URL(options.url);
    if (url.pathname === "" || url.pathname === "/") url.pathname = WEBSOCKET_PATH;
    if (options.apiKey) url.searchParams.set("api_key", options.apiKey);
    this.url = url.toString();
  }

  open(handlers: TransportHandlers): TransportStream {
    const socket = this.tls ? new this.WebSocketCtor(this.url, WEBSOCKET_SUBPROTOCOL, this.tls) : new this.WebSocketCtor(this.url, WEBSOCKET_SUBPROTOCOL);
    socket.binaryType = "arraybuffer";
    const backlog: Uint8Array[] = [];
    let finished = false;
    let halfClosed = false;
    // Input seqs sent on this socket that the server has not answered (acked, or refused with an error naming them).
    const unanswered = new Set<number>();
    let watchdog: ReturnType<typeof setTimeout> | undefined;
    const stopWatchdog = (): void => {
      if (watchdog !== undefined) clearTimeout(watchdog);
      watchdog = undefined;
    };
    const finish = (error?: MicroturnError): void => {
      stopWatchdog();
      this.sockets.delete(socket);
      if (finished) return;
      finished = true;
      handlers.onClose(error);
    };
    // Browsers and undici take only 1000 or 3000–4999 from the client side.
    const closeSocket = (code: number, reason: string): void => {
      try {
        socket.close(code, reason);
      } catch {
        // Already closing.
      }
    };
    const ackTimeoutMs = this.ackTimeoutMs;
    // What was still to upload when the countdown began: a chunk still going out on a slow uplink is no dead link.
    let uploadMark = 0;
    const buffered = (): number => socket.bufferedAmount ?? 0;
    const onSilence = (): void => {
      watchdog = undefined;
      if (finished) return;
      const left = buffered();
      if (left < uploadMark) {
        // The upload moved on (a large chunk on a slow uplink): the server acks a chunk once it has all of it.
        uploadMark = left;
        startCountdown();
        return;
      }
      finish(
        errorFromGrpcStatus({
          code: GrpcCode.UNAVAILABLE,
          details: `no server event for ${ackTimeoutMs} ms while ${unanswered.size} input chunk(s) awaited their ack: the connection is presumed dead`,
        }),
      );
      // A close handshake would wait on a peer that does not answer: drop the socket at once where the class can.
      const terminate = (socket as { terminate?: unknown }).terminate;
      if (typeof terminate === "function") (terminate as () => void).call(socket);
      else closeSocket(4000 + GrpcCode.UNAVAILABLE, "no server event while input awaited its ack");
    };
    // Counts from the last server event, or from the first chunk sent after the server had answered everything.
    const armWatchdog = (restart: boolean): void => {
      if (restart) stopWatchdog();
      if (finished || ackTimeoutMs === 0 || unanswered.size === 0) return;
      // Bytes still to upload (this chunk, or one sent while the countdown runs): silence counts only once they stop moving.
      if (buffered() > 0) uploadMark = Number.POSITIVE_INFINITY;
      else if (watchdog === undefined) uploadMark = 0;
      if (watchdog === undefined) startCountdown();
    };
    const startCountdown = (): void => {
      watchdog = setTimeout(onSilence, ackTimeoutMs);
      // Node: the watchdog alone does not keep the process alive.
      (watchdog as { unref?: () => void }).unref?.();
    };
    const cancel = (reason: string): void => {
      finished = true;
      stopWatchdog();
      this.sockets.delete(socket);
      closeSocket(1000, reason);
    };
    this.sockets.set(socket, cancel);
    socket.onopen = () => {
      for (const bytes of backlog.splice(0)) socket.send(bytes);
    };
    socket.onmessage = (message) => {
      if (finished) return;
      const data = message.data;
      const bytes =
        data instanceof ArrayBuffer ? new Uint8Array(data) : ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : undefined;
      // 4002 says "protocol error".
      const refuse = (error: ConnectionError, reason: string): void => {
        finish(error);
        closeSocket(4002, reason);
      };
      if (!bytes) return refuse(new ConnectionError("server sent a non-binary WebSocket message"), "non-binary message");
      let event: ServerEvent;
      try {
        event = ServerEvent.decode(bytes);
      } catch (error) {
        return refuse(new ConnectionError("server sent a message that is not a ServerEvent", { cause: error }), "undecodable ServerEvent");
      }
      const body = event.event;
      if (body?.$case === "inputAck" || body?.$case === "error") unanswered.delete(body.value.seq);
      // Any event shows the connection alive; handlers may send (resends after a resume), which arms it afresh.
      armWatchdog(true);
      handlers.onEvent(event);
    };
    socket.onerror = () => {
      // The close event that follows carries the code; nothing to add here.
    };
    socket.onclose = (event) => finish(closeCodeError(event.code, event.reason));
    return {
      send(event: ClientEvent): void {
        if (finished || halfClosed) return;
        const bytes = ClientEvent.encode(event).finish();
        if (socket.readyState === OPEN) socket.send(bytes);
        else backlog.push(bytes);
        if (event.event?.$case === "input") {
          unanswered.add(event.event.value.seq);
          armWatchdog(false);
        }
      },
      end(): void {
        // WebSocket has no half-close; SessionEnd already tells the server, which closes with 1000.
        halfClosed = true;
      },
      cancel(): void {
        cancel("client cancelled");
      },
    };
  }

  close(): void {
    for (const cancel of [...this.sockets.values()]) cancel("client closed");
  }
}
