// The same session API over WebSocket, against the fake sidecar served by the `ws` package.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { WebSocket, WebSocketServer } from "ws";
import { Microturn } from "../client.js";
import { Microturn as BrowserMicroturn } from "../browser.js";
import { ConnectionError, UnauthenticatedError } from "./error.js";
import { InvalidInputError } from "./session-errors.js";
import type { InteractionSession } from "./session.js";
import { closeCodeError, type WebSocketConstructor, WebSocketTransport } from "./websocket-transport.js";
import { type FakeSidecar, startFakeSidecar } from "../testing/fake-sidecar.js";

const WS = WebSocket as unknown as WebSocketConstructor;
let fake: FakeSidecar;
const sessions: InteractionSession[] = [];

beforeEach(async () => {
  fake = await startFakeSidecar({ webSocketServer: WebSocketServer, apiKey: "k1" });
});

afterEach(async () => {
  for (const session of sessions.splice(0)) await session.close({ timeoutMs: 500 });
  await fake.close();
});

describe("WebSocketTransport", () => {
  it("runs a session over binary protobuf frames with the api_key query", async () => {
    const client = new BrowserMicroturn({ url: fake.wsUrl, apiKey: "k1", WebSocket: WS, clock: "manual" });
    const session = await client.connect({ instructions: "ws" });
    sessions.push(session);
    const texts: string[] = [];
    session.on("output", (chunk) => texts.push(chunk.text));
    session.sendText("over ws");
    session.flushChunk();
    await fake.waitFor(() => texts.length === 1);
    expect(texts).toEqual(["echo: over ws"]);
    expect(fake.session().config.instructions).toBe("ws");
  });

  it("defaults the path to /v1/converse and the Node client picks WebSocket for ws:// URLs", async () => {
    const base = fake.wsUrl.replace("/v1/converse", "");
    const session = await new Microturn({ url: base, apiKey: "k1", WebSocket: WS, clock: "manual" }).connect();
    sessions.push(session);
    expect(session.state).toBe("open");
  });

  it("maps a 4000+code close to the typed error", async () => {
    const error = await new BrowserMicroturn({ url: fake.wsUrl, apiKey: "nope", WebSocket: WS, clock: "manual" }).connect().catch((e: unknown) => e);
    expect(UnauthenticatedError.isInstance(error)).toBe(true);
  });

  it("resumes after a dropped socket with every chunk exactly once", async () => {
    const session = await new BrowserMicroturn({
      url: fake.wsUrl,
      apiKey: "k1",
      WebSocket: WS,
      clock: "manual",
      reconnect: { initialDelayMs: 5 },
    }).connect();
    sessions.push(session);
    let reconnected = 0;
    session.on("reconnected", () => reconnected++);
    for (let i = 0; i < 4; i++) session.sendChunk({ text: String(i) });
    await fake.waitFor(() => fake.session().accepted.length === 4);
    fake.dropStream();
    for (let i = 4; i < 8; i++) session.sendChunk({ text: String(i) });
    await fake.waitFor(() => reconnected === 1 && fake.session().accepted.length === 8);
    expect(fake.session().accepted).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it("needs a WebSocket implementation and a ws URL in the browser client", () => {
    const saved = (globalThis as { WebSocket?: unknown }).WebSocket;
    (globalThis as { WebSocket?: unknown }).WebSocket = undefined;
    try {
      expect(() => new WebSocketTransport({ url: "ws://127.0.0.1:1" })).toThrow(ConnectionError);
    } finally {
      (globalThis as { WebSocket?: unknown }).WebSocket = saved;
    }
    expect(() => new BrowserMicroturn({ url: "grpc://127.0.0.1:1" }).session()).toThrow(InvalidInputError);
    // A browser trusts its own certificate store: the Node-only tls option is refused at construction.
    expect(() => new BrowserMicroturn({ url: "wss://127.0.0.1:1", tls: { ca: "x" } })).toThrow(/browser trusts its own certificate store/);
  });

  it("closes the socket with 4002 on a text or undecodable frame, and reports a ConnectionError once", async () => {
    for (const bad of ["a text frame", Buffer.from([0xff, 0xff, 0xff])]) {
      const server = new WebSocketServer({ port: 0 });
      await new Promise((resolve) => server.once("listening", resolve));
      const serverSide = new Promise<number>((resolve) =>
        server.once("connection", (socket) => {
          socket.once("close", (code) => resolve(code));
          socket.send(bad);
        }),
      );
      const transport = new WebSocketTransport({ url: `ws://127.0.0.1:${(server.address() as { port: number }).port}/v1/converse`, WebSocket: WS });
      const closes: unknown[] = [];
      transport.open({ onEvent: () => undefined, onClose: (error) => closes.push(error) });
      expect(await serverSide).toBe(4002);
      expect(closes).toHaveLength(1);
      expect(ConnectionError.isInstance(closes[0])).toBe(true);
      transport.close();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it("reads close codes: 1000 clean, 4xxx gRPC, others a connection error", () => {
    expect(closeCodeError(1000, "")).toBeUndefined();
    expect(closeCodeError(4014, "down")?.name).toBe("UnavailableError");
    // Unreachable or gone: the class gRPC's UNAVAILABLE maps to, so apps check one class for either transport.
    expect(closeCodeError(1006, "")?.name).toBe("UnavailableError");
    expect(closeCodeError(1006, "")?.message).toMatch(/WebSocket closed with code 1006/);
    expect(closeCodeError(1012, "restart")?.name).toBe("UnavailableError");
    expect(closeCodeError(1002, "")?.name).toBe("ConnectionError");
    // Too big for the peer: sent again after a resume it would fail again, so not retryable (message-too-large.test.ts).
    expect(closeCodeError(1009, "Max payload size exceeded")).toMatchObject({ name: "BadRequestError", retryable: false });
  });
});
