// The options object and session factory shared by the Node and browser
// clients; each entry point supplies the transports it can build.
import { InvalidInputError } from "./session-errors.js";
import { InteractionSession, resolveSessionOptions, type SessionConfigInput, type SessionOptions } from "./session.js";
import type { Transport } from "./transport.js";
import { resolveAckTimeoutMs, type WebSocketConstructor, type WebSocketTlsOptions } from "./websocket-transport.js";
import { type Endpoint, parseEndpoint } from "../internal/url.js";

export interface MicroturnOptions extends SessionOptions {
  /** Sidecar URL: grpc://host:port, host:port, grpcs://host:port, unix:///path (a sidecar's --socket), ws(s)://host:port. Defaults to env MICROTURN_URL. */
  url?: string;
  /** API key; defaults to env MICROTURN_API_KEY. */
  apiKey?: string;
  /**
   * TLS for a grpcs:// or wss:// URL (Node): PEM `ca` to trust a private CA instead of the
   * system's roots, `cert` and `key` for a sidecar that asks for client certificates (mutual TLS).
   * For wss:// they go to the WebSocket class as its options (the `ws` package takes them).
   */
  tls?: TlsOptions;
  /** WebSocket implementation for ws(s):// URLs where globalThis.WebSocket is missing (Node 20). */
  WebSocket?: WebSocketConstructor;
  /**
   * ws(s):// only: while input chunks await their ack, this long without any
   * server event presumes the connection dead and resumes (browsers cannot
   * send pings). Default 15000; 0 or Infinity: off.
   */
  ackTimeoutMs?: number;
  /** Use this transport instead of one built from the URL (custom carriers, tests). */
  transport?: () => Transport;
}

export type TlsOptions = WebSocketTlsOptions;

export type TransportFactory = (endpoint: Endpoint, options: MicroturnOptions & { apiKey: string | undefined }) => Transport;

function env(name: string): string | undefined {
  const value = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.[name];
  return value === undefined || value === "" ? undefined : value;
}

export class MicroturnClientBase {
  readonly url: string;
  readonly endpoint: Endpoint;
  protected readonly options: MicroturnOptions;
  private readonly apiKey: string | undefined;
  private readonly makeTransport: TransportFactory;

  protected constructor(options: MicroturnOptions, makeTransport: TransportFactory) {
    const url = options.url ?? env("MICROTURN_URL");
    if (!url && !options.transport) {
      throw new InvalidInputError(
        "no sidecar URL: pass `url` to new Microturn({ url }) or set the MICROTURN_URL environment variable (e.g. grpc://127.0.0.1:7700)",
      );
    }
    this.url = url ?? "";
    this.endpoint = url ? parseEndpoint(url) : { kind: "grpc", address: "", tls: false };
    this.apiKey = options.apiKey ?? env("MICROTURN_API_KEY");
    // Bad session options fail here, not at the first session.
    resolveSessionOptions(options);
    resolveAckTimeoutMs(options.ackTimeoutMs);
    this.options = options;
    this.makeTransport = makeTransport;
  }

  /** A session that is not connected yet: register tools on it, then call `connect()`. */
  session(config: SessionConfigInput = {}, options: SessionOptions = {}): InteractionSession {
    // Checked before a transport is made: a refused session leaves no channel open.
    resolveSessionOptions({ ...this.options, ...options });
    const transport = this.options.transport?.() ?? this.makeTransport(this.endpoint, { ...this.options, apiKey: this.apiKey });
    return new InteractionSession(transport, config, { ...this.options, ...options });
  }

  /** Opens a session: sends SessionStart and resolves once the server answered SessionStarted. */
  async connect(config: SessionConfigInput = {}, options: SessionOptions & { signal?: AbortSignal } = {}): Promise<InteractionSession> {
    const session = this.session(config, options);
    return session.connect({ signal: options.signal });
  }
}
