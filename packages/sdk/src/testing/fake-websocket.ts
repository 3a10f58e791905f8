// Serves the fake sidecar over WebSocket with the `ws` package's server,
// which the caller passes in so the testing entry has no hard dependency on it.
import { ClientEvent, MAX_MESSAGE_BYTES, ServerEvent } from "@microturn/protocol";
import type { FakePeer, FakeSidecar } from "./fake-sidecar.js";

interface WsSocket {
  protocol: string;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  on(event: "message", listener: (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => void): void;
  on(event: "close", listener: () => void): void;
}

interface WsServer {
  on(event: "connection", listener: (socket: WsSocket, request: { url?: string }) => void): void;
  on(event: "listening", listener: () => void): void;
  address(): unknown;
  close(callback?: () => void): void;
  clients: Set<WsSocket>;
}

export type WebSocketServerConstructor = new (options: {
  host: string;
  port: number;
  path: string;
  maxPayload?: number;
  handleProtocols?: (protocols: Set<string>) => string | false;
}) => WsServer;

export async function attachWebSocketServer(
  sidecar: FakeSidecar,
  WebSocketServer: WebSocketServerConstructor,
): Promise<{ url: string; close(): Promise<void> }> {
  const server = new WebSocketServer({
    host: "127.0.0.1",
    port: 0,
    path: "/v1/converse",
    maxPayload: MAX_MESSAGE_BYTES,
    handleProtocols: (protocols) => (protocols.has("microturn.v1") ? "microturn.v1" : false),
  });
  await new Promise<void>((resolve) => server.on("listening", resolve));
  server.on("connection", (socket, request) => {
    if (socket.protocol !== "microturn.v1") return socket.close(4000 + 3, "subprotocol microturn.v1 required");
    const apiKey = new URL(request.url ?? "/", "http://localhost").searchParams.get("api_key") ?? undefined;
    let open = true;
    const peer: FakePeer = {
      send: (event) => {
        if (open) socket.send(ServerEvent.encode(event).finish());
      },
      end: () => {
        if (!open) return;
        open = false;
        socket.close(1000, "session over");
      },
      fail: (code, message) => {
        if (!open) return;
        open = false;
        socket.close(4000 + code, message.slice(0, 120));
      },
    };
    const handlers = sidecar.handlePeer(peer, apiKey);
    socket.on("message", (data, isBinary) => {
      if (!open) return;
      if (!isBinary || Array.isArray(data)) return peer.fail(3, "binary protobuf ClientEvent messages only");
      handlers.onEvent(ClientEvent.decode(new Uint8Array(data as ArrayBuffer)));
    });
    socket.on("close", () => {
      open = false;
      handlers.onClose();
    });
  });
  const port = (server.address() as { port: number }).port;
  return {
    url: `ws://127.0.0.1:${port}/v1/converse`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const client of server.clients) client.close(1001, "server closing");
        server.close(() => resolve());
      }),
  };
}
