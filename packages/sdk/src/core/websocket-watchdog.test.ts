// The WebSocket transport's ack watchdog: a connection that goes silent while input awaits its ack is failed as
// retryable, so the session resumes; silence with nothing outstanding is left alone.
import { connect, createServer, type Server, type Socket } from "node:net";
import { ClientEvent, ServerEvent } from "@microturn/protocol";
import { afterEach, describe, expect, it, vi } from "vitest";
import { WebSocket, WebSocketServer } from "ws";
import { Microturn } from "../browser.js";
import type { MicroturnError } from "./error.js";
import { UnavailableError } from "./error.js";
import { InvalidInputError } from "./session-errors.js";
import type { InteractionSession } from "./session.js";
import type { TransportStream } from "./transport.js";
import { type WebSocketConstructor, type WebSocketLike, WebSocketTransport } from "./websocket-transport.js";
import { type FakeSidecar, startFakeSidecar } from "../testing/fake-sidecar.js";

const WS = WebSocket as unknown as WebSocketConstructor;

/** A socket the test answers for: open at once, records what the transport sends and how it ends the socket. */
class ScriptedSocket implements WebSocketLike {
  static last: ScriptedSocket | undefined;
  binaryType = "";
  readyState = 1;
  bufferedAmount = 0;
  closed: { code?: number; reason?: string } | undefined;
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onclose: ((event: { code: number; reason: string }) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  constructor() {
    ScriptedSocket.last = this;
  }
  send(): void {}
  close(code?: number, reason?: string): void {
    this.closed = { code, reason };
  }
  /** One server event arrives. */
  receive(body: NonNullable<ServerEvent["event"]>): void {
    this.onmessage?.({ data: ServerEvent.encode({ eventSeq: 0, event: body }).finish() });
  }
}

const input = (seq: number): ClientEvent => ClientEvent.fromPartial({ event: { $case: "input", value: { seq, startMs: seq * 200, durationMs: 200 } } });

const ack = (seq: number): NonNullable<ServerEvent["event"]> => ({ $case: "inputAck", value: { seq, duplicate: false, queueDepth: 0 } });

function openScripted(ackTimeoutMs?: number): { transport: WebSocketTransport; stream: TransportStream; socket: ScriptedSocket; closes: Array<MicroturnError | undefined> } {
  const transport = new WebSocketTransport({ url: "ws://127.0.0.1:1", WebSocket: ScriptedSocket as unknown as WebSocketConstructor, ackTimeoutMs });
  const closes: Array<MicroturnError | undefined> = [];
  const stream = transport.open({ onEvent: () => undefined, onClose: (error) => closes.push(error) });
  return { transport, stream, socket: ScriptedSocket.last!, closes };
}

describe("WebSocket ack watchdog (timers)", () => {
  afterEach(() => {
    vi.useRealTimers();
    vi.restoreAllMocks();
  });

  it("fails the stream as retryable after ackTimeoutMs of silence while a chunk awaits its ack (default 15 s)", () => {
    vi.useFakeTimers();
    const { stream, socket, closes } = openScripted();
    stream.send(input(0));
    vi.advanceTimersByTime(14_999);
    expect(closes).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(closes).toHaveLength(1);
    expect(UnavailableError.isInstance(closes[0])).toBe(true);
    expect((closes[0] as UnavailableError).retryable).toBe(true);
    expect(closes[0]?.message).toMatch(/no server event for 15000 ms while 1 input chunk\(s\) awaited their ack/);
    // The socket is let go (the scripted class has no terminate(): a close with 4000 + UNAVAILABLE).
    expect(socket.closed?.code).toBe(4014);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("counts from the last server event of any kind, and stops once every chunk is answered", () => {
    vi.useFakeTimers();
    const { stream, socket, closes } = openScripted(1000);
    stream.send(input(0));
    stream.send(input(1));
    vi.advanceTimersByTime(900);
    socket.receive({ $case: "goAway", value: { reason: "", resumeToken: "", deadlineMs: 0 } });
    vi.advanceTimersByTime(900);
    socket.receive(ack(0));
    vi.advanceTimersByTime(900);
    expect(closes).toEqual([]);
    // A chunk refused with an error naming it is answered too: the server will not ack it.
    socket.receive({ $case: "error", value: { code: 3, message: "bad chunk", retryable: false, seq: 1, eventId: "", fatal: false } });
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(3_600_000);
    expect(closes).toEqual([]);
    // The next chunk counts from when it was sent, not from the long quiet before it.
    stream.send(input(2));
    vi.advanceTimersByTime(999);
    expect(closes).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(closes).toHaveLength(1);
  });

  it("never fails a quiet stream with nothing outstanding", () => {
    vi.useFakeTimers();
    const { stream, closes } = openScripted(1000);
    stream.send(ClientEvent.fromPartial({ event: { $case: "playback", value: { playedUpToMs: 0 } } }));
    vi.advanceTimersByTime(3_600_000);
    expect(closes).toEqual([]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("is off with 0 or Infinity, and refuses other values at construction", () => {
    vi.useFakeTimers();
    for (const off of [0, Number.POSITIVE_INFINITY]) {
      const { stream, closes } = openScripted(off);
      stream.send(input(0));
      expect(vi.getTimerCount()).toBe(0);
      vi.advanceTimersByTime(3_600_000);
      expect(closes).toEqual([]);
    }
    for (const bad of [-1, 1.5, Number.NaN, 2 ** 31, "15000"]) {
      expect(() => new WebSocketTransport({ url: "ws://127.0.0.1:1", WebSocket: ScriptedSocket as unknown as WebSocketConstructor, ackTimeoutMs: bad as number })).toThrow(
        InvalidInputError,
      );
      // The client's option is checked when the client is made, not at its first session.
      expect(() => new Microturn({ url: "ws://127.0.0.1:1", ackTimeoutMs: bad as number })).toThrow(/ackTimeoutMs/);
    }
  });

  it("waits while a chunk is still uploading (a slow uplink), and fires once the bytes stop moving (it once resumed forever on a working link)", () => {
    vi.useFakeTimers();
    const { stream, socket, closes } = openScripted(1000);
    socket.bufferedAmount = 12_000_000;
    stream.send(input(0));
    vi.advanceTimersByTime(1000);
    socket.bufferedAmount = 6_000_000;
    vi.advanceTimersByTime(1000);
    // A second chunk sent while the countdown runs adds bytes: still moving, not silence.
    socket.bufferedAmount = 9_000_000;
    stream.send(input(1));
    vi.advanceTimersByTime(1000);
    socket.bufferedAmount = 0;
    vi.advanceTimersByTime(1000);
    expect(closes).toEqual([]);
    // All handed to the network, and still no answer a whole timeout later: presumed dead.
    vi.advanceTimersByTime(1000);
    expect(closes).toEqual([expect.any(UnavailableError)]);
  });

  it("fires when the upload stops moving", () => {
    vi.useFakeTimers();
    const { stream, socket, closes } = openScripted(1000);
    socket.bufferedAmount = 5_000;
    stream.send(input(0));
    vi.advanceTimersByTime(1000);
    expect(closes).toEqual([]);
    vi.advanceTimersByTime(1000);
    expect(closes).toEqual([expect.any(UnavailableError)]);
  });

  it("clears its timer on cancel() and on transport.close()", () => {
    vi.useFakeTimers();
    const first = openScripted(1000);
    first.stream.send(input(0));
    expect(vi.getTimerCount()).toBe(1);
    first.stream.cancel();
    expect(vi.getTimerCount()).toBe(0);
    const second = openScripted(1000);
    second.stream.send(input(0));
    second.transport.close();
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(5000);
    expect([...first.closes, ...second.closes]).toEqual([]);
  });

  it("does not keep Node alive (the timer is unref'd)", () => {
    const timers: Array<ReturnType<typeof setTimeout>> = [];
    const real = globalThis.setTimeout;
    vi.spyOn(globalThis, "setTimeout").mockImplementation(((...args: Parameters<typeof setTimeout>) => {
      const timer = real(...args);
      timers.push(timer);
      return timer;
    }) as typeof setTimeout);
    const { transport, stream } = openScripted(60_000);
    stream.send(input(0));
    expect(timers).toHaveLength(1);
    expect((timers[0] as unknown as { hasRef(): boolean }).hasRef()).toBe(false);
    transport.close();
  });
});

/** A TCP relay that can stop forwarding on the connections it holds, without closing them (a stuck proxy or NAT). */
async function startStuckableProxy(target: string): Promise<{ url: string; stall(direction: "both" | "toClient"): void; close(): Promise<void> }> {
  const upstream = new URL(target);
  const pairs: Array<{ client: Socket; server: Socket; toServer: boolean; toClient: boolean }> = [];
  const proxy: Server = createServer((client) => {
    const server = connect(Number(upstream.port), upstream.hostname);
    const pair = { client, server, toServer: true, toClient: true };
    pairs.push(pair);
    client.on("data", (data) => pair.toServer && server.write(data));
    server.on("data", (data) => pair.toClient && client.write(data));
    for (const [a, b] of [[client, server], [server, client]] as const) {
      a.on("close", () => b.destroy());
      a.on("error", () => b.destroy());
    }
  });
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  const port = (proxy.address() as { port: number }).port;
  return {
    url: `ws://127.0.0.1:${port}${upstream.pathname}`,
    stall(direction) {
      for (const pair of pairs) {
        pair.toClient = false;
        if (direction === "both") pair.toServer = false;
      }
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const pair of pairs) pair.client.destroy();
        proxy.close(() => resolve());
      }),
  };
}

describe("WebSocket ack watchdog (a stuck path to the fake sidecar)", () => {
  let fake: FakeSidecar | undefined;
  let proxy: Awaited<ReturnType<typeof startStuckableProxy>> | undefined;
  const sessions: InteractionSession[] = [];

  afterEach(async () => {
    for (const session of sessions.splice(0)) await session.close({ timeoutMs: 200 });
    await proxy?.close();
    await fake?.close();
  });

  async function connectThroughProxy(ackTimeoutMs: number): Promise<{ session: InteractionSession; reconnecting: Array<MicroturnError | undefined>; reconnected: number[] }> {
    fake = await startFakeSidecar({ webSocketServer: WebSocketServer, apiKey: "k1" });
    proxy = await startStuckableProxy(fake.wsUrl);
    const url = proxy.url;
    // The client's own option reaches the transport it builds for the ws:// URL.
    const session = await new Microturn({ url, apiKey: "k1", WebSocket: WS, ackTimeoutMs, clock: "manual", reconnect: { initialDelayMs: 5 } }).connect();
    sessions.push(session);
    const reconnecting: Array<MicroturnError | undefined> = [];
    const reconnected: number[] = [];
    session.on("reconnecting", (info) => reconnecting.push(info.error));
    session.on("reconnected", (info) => reconnected.push(info.resentChunks));
    return { session, reconnecting, reconnected };
  }

  for (const [direction, what] of [
    ["both", "the chunks never reach the server"],
    ["toClient", "the server takes the chunks but its acks are lost"],
  ] as const) {
    it(`resumes a stream that went silent with chunks unacked (${what}), each chunk taken once`, async () => {
      const { session, reconnecting, reconnected } = await connectThroughProxy(300);
      for (let i = 0; i < 3; i++) session.sendChunk({ text: String(i) });
      await fake!.waitFor(() => fake!.session().accepted.length === 3 && session.unackedSeqs.length === 0);
      proxy!.stall(direction);
      for (let i = 3; i < 6; i++) session.sendChunk({ text: String(i) });
      await fake!.waitFor(() => reconnected.length === 1 && fake!.session().accepted.length === 6 && session.unackedSeqs.length === 0);
      expect(reconnecting).toHaveLength(1);
      expect(UnavailableError.isInstance(reconnecting[0])).toBe(true);
      expect(reconnecting[0]?.message).toMatch(/presumed dead/);
      expect(reconnected).toEqual([direction === "both" ? 3 : 0]);
      expect(fake!.session().accepted).toEqual([0, 1, 2, 3, 4, 5]);
      expect(fake!.session().duplicates).toEqual([]);
      expect(session.state).toBe("open");
    });
  }

  it("leaves a quiet session alone, even on a stuck path, while nothing awaits an ack", async () => {
    const { session, reconnecting } = await connectThroughProxy(150);
    session.sendChunk({ text: "0" });
    await fake!.waitFor(() => session.unackedSeqs.length === 0);
    proxy!.stall("both");
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(reconnecting).toEqual([]);
    expect(session.state).toBe("open");
    expect(fake!.streamsOpened).toBe(1);
  });
});
