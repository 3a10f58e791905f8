// Parses the sidecar URL forms the SDK accepts into a transport choice.
import { InvalidInputError } from "../core/session-errors.js";

export type Endpoint =
  | { kind: "grpc"; address: string; tls: boolean }
  | { kind: "websocket"; url: string };

export function parseEndpoint(raw: string): Endpoint {
  const url = raw.trim();
  // A sidecar's Unix socket on this host (--socket): unix:///abs/path or unix:/abs/path, as gRPC names it.
  const socket = /^unix:(?:\/\/)?(.+)$/i.exec(url)?.[1];
  if (socket !== undefined) return { kind: "grpc", address: `unix:${socket}`, tls: false };
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url)?.[1]?.toLowerCase();
  if (scheme === undefined) {
    if (!/^[^/\s:]+:\d{1,5}$/.test(url) && !/^\[[0-9a-f:]+\]:\d{1,5}$/i.test(url)) {
      throw new InvalidInputError(`MICROTURN_URL ${JSON.stringify(raw)} is not host:port, grpc://host:port, unix:///path or ws(s)://host:port`);
    }
    return { kind: "grpc", address: url, tls: false };
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new InvalidInputError(`MICROTURN_URL ${JSON.stringify(raw)} is not a valid URL`);
  }
  switch (scheme) {
    case "grpc":
    case "grpcs":
      if (!parsed.port) throw new InvalidInputError(`MICROTURN_URL ${JSON.stringify(raw)} needs a port`);
      return { kind: "grpc", address: `${parsed.hostname}:${parsed.port}`, tls: scheme === "grpcs" };
    case "ws":
    case "wss":
      return { kind: "websocket", url: parsed.toString() };
    default:
      throw new InvalidInputError(
        `MICROTURN_URL scheme ${scheme}:// is not supported; use grpc://host:port (or host:port, or unix:///path) in Node, ws:// or wss:// in browsers`,
      );
  }
}
