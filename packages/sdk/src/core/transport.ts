// The duplex a session runs over: ClientEvents out, ServerEvents in. gRPC in
// Node (grpc-transport.ts), WebSocket in browsers (websocket-transport.ts).
import type { ClientEvent, ServerEvent } from "@microturn/protocol";
import type { MicroturnError } from "./error.js";

export interface TransportHandlers {
  /** One event from the server, in arrival order. */
  onEvent(event: ServerEvent): void;
  /**
   * The stream is over: `error` is undefined when the server closed it
   * cleanly, otherwise the typed reason. Called at most once, never after
   * `cancel()`.
   */
  onClose(error?: MicroturnError): void;
}

export interface TransportStream {
  /** Queues one event; events sent after the stream ended are dropped. */
  send(event: ClientEvent): void;
  /** Half-closes: no more client events; the server's events still arrive. */
  end(): void;
  /** Tears the stream down now; `onClose` is not called. */
  cancel(): void;
}

export interface Transport {
  /** Opens one Converse stream. */
  open(handlers: TransportHandlers): TransportStream;
  /** Releases the channel; open streams are cancelled. */
  close(): void;
  /**
   * Makes the next stream open a new connection (after a GoAway: the server is
   * going away, and a balancer can send a new connection elsewhere). Transports
   * that connect per stream need nothing.
   */
  renew?(): void;
}

/** True when a failure is worth a reconnect: transient server or network trouble. */
export function isRetryableFailure(error: unknown): boolean {
  if (typeof error !== "object" || error === null) return false;
  const retryable = (error as { retryable?: unknown }).retryable;
  if (typeof retryable === "boolean") return retryable;
  return (error as { name?: unknown }).name === "ConnectionError";
}
