// Frames that do not decode as a ClientEvent, over gRPC and WebSocket: bytes
// that are not one, a uint64 past what a JS number carries, a WebSocket text
// frame. Each is answered with an INVALID_ARGUMENT error in the session's own
// event order (so a resume replays it), counted in microturn_errors_total, and
// the stream and session go on (gRPC once cut the stream with INTERNAL).
import * as grpc from "@grpc/grpc-js";
import { ClientEvent, ErrorCode, PROTOCOL_VERSION, ServerEvent } from "@microturn/protocol";
import { afterEach, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { createLogger } from "../src/logger.js";
import { SidecarMetrics } from "../src/metrics.js";
import { startServer, WEBSOCKET_PATH, WEBSOCKET_PROTOCOL, type RunningServer } from "../src/server.js";
import { SessionHub } from "../src/session/session-hub.js";
import { FakeEngine } from "./helpers/fake-engine.js";

let running: RunningServer | undefined;
const cleanups: (() => void)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) cleanup();
  await running?.close();
  running = undefined;
});

async function setup() {
  const metrics = new SidecarMetrics(false);
  const logger = createLogger("silent");
  const hub = new SessionHub({ engine: new FakeEngine(), limits: { maxOutputTokensPerTurn: 16, maxQueuedChunks: 50 }, maxSessions: 4, resumeGraceMs: 10_000, recordDir: "", logger, observer: metrics.observer() });
  running = await startServer({ hub, logger, metrics, apiKey: "", host: "127.0.0.1", port: 0, httpPort: 0, isServing: () => true });
  return { metrics, running };
}

const encode = (event: ClientEvent): Buffer => Buffer.from(ClientEvent.encode(event).finish());
const startEvent = (): Buffer => encode(ClientEvent.fromPartial({ event: { $case: "start", value: { protocolVersion: PROTOCOL_VERSION, config: { chunkDurationMs: 200 } } } }));
const chunk = (seq: number, text: string): Buffer =>
  encode(ClientEvent.fromPartial({ event: { $case: "input", value: { seq, startMs: seq * 200, durationMs: 200, text } } }));

function varint(n: bigint): number[] {
  const out: number[] = [];
  for (; n > 127n; n >>= 7n) out.push(Number((n & 127n) | 128n));
  out.push(Number(n));
  return out;
}

/** A ClientEvent.input whose seq is 2^60: valid protobuf, past Number.MAX_SAFE_INTEGER. */
function hugeSeqChunk(): Buffer {
  const input = Buffer.from([0x08, ...varint(2n ** 60n), 0x18, ...varint(200n), 0x22, 1, 0x7a]);
  return Buffer.from([0x22, ...varint(BigInt(input.length)), ...input]);
}

/** A Converse call that writes raw bytes, so frames the generated client would never encode can be sent. */
function rawConverse(address: string) {
  const Client = grpc.makeGenericClientConstructor(
    {
      converse: {
        path: "/microturn.v1.Interaction/Converse",
        requestStream: true,
        responseStream: true,
        requestSerialize: (bytes: Buffer) => bytes,
        requestDeserialize: (bytes: Buffer) => bytes,
        responseSerialize: (event: ServerEvent) => Buffer.from(ServerEvent.encode(event).finish()),
        responseDeserialize: (bytes: Buffer) => ServerEvent.decode(bytes),
      },
    },
    "Interaction",
  );
  const client = new Client(address, grpc.credentials.createInsecure());
  const call = (client as unknown as { converse(): grpc.ClientDuplexStream<Buffer, ServerEvent> }).converse();
  const events: ServerEvent[] = [];
  let status: grpc.StatusObject | undefined;
  call.on("data", (event: ServerEvent) => events.push(event));
  call.on("status", (s: grpc.StatusObject) => (status = s));
  call.on("error", () => undefined);
  cleanups.push(() => {
    call.cancel();
    client.close();
  });
  return { call, events, status: () => status };
}

const until = async (check: () => boolean, ms = 3000): Promise<void> => {
  for (let waited = 0; !check(); waited += 10) {
    if (waited > ms) throw new Error("timed out");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
};

const errorsOf = (events: ServerEvent[]) => events.flatMap((e) => (e.event?.$case === "error" ? [{ ...e.event.value, eventSeq: e.eventSeq }] : []));
const ackedSeqs = (events: ServerEvent[]) => events.flatMap((e) => (e.event?.$case === "inputAck" ? [e.event.value.seq] : []));

async function invalidArgumentCount(metrics: SidecarMetrics): Promise<number> {
  const metric = await metrics.registry.getSingleMetric("microturn_errors_total")?.get();
  return metric?.values.find((v) => v.labels.code === "ERROR_CODE_INVALID_ARGUMENT")?.value ?? 0;
}

describe("frames that are not a ClientEvent", () => {
  it("over gRPC: each gets a typed error in the session's event order, and the session goes on", async () => {
    const { metrics, running } = await setup();
    const stream = rawConverse(running.grpcAddress);
    stream.call.write(startEvent());
    await until(() => stream.events.some((e) => e.event?.$case === "started"));
    stream.call.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]));
    stream.call.write(chunk(0, "after garbage"));
    stream.call.write(hugeSeqChunk());
    stream.call.write(chunk(1, "after a huge seq"));
    await until(() => ackedSeqs(stream.events).length === 2 && errorsOf(stream.events).length === 2);

    expect(stream.status()).toBeUndefined();
    const errors = errorsOf(stream.events);
    expect(errors.map((e) => e.code)).toEqual([ErrorCode.ERROR_CODE_INVALID_ARGUMENT, ErrorCode.ERROR_CODE_INVALID_ARGUMENT]);
    expect(errors.every((e) => e.message.startsWith("malformed ClientEvent frame: ") && !e.fatal)).toBe(true);
    expect(errors[1]!.message).toMatch(/MAX_SAFE_INTEGER/);
    // In the session's outbox (a resume replays them), between the acks of the chunks around them.
    expect(errors.every((e) => e.eventSeq > 0)).toBe(true);
    const order = stream.events.map((e) => (e.event?.$case === "inputAck" ? `ack ${e.event.value.seq}` : e.event?.$case === "error" ? "error" : "")).filter(Boolean);
    expect(order).toEqual(["error", "ack 0", "error", "ack 1"]);
    expect(await invalidArgumentCount(metrics)).toBe(2);
  });

  it("a frame that is not a ClientEvent before the session started: an error, and a start after it still opens one", async () => {
    const { running } = await setup();
    const stream = rawConverse(running.grpcAddress);
    stream.call.write(Buffer.from([0xff]));
    stream.call.write(startEvent());
    await until(() => stream.events.some((e) => e.event?.$case === "started"));
    expect(errorsOf(stream.events).map((e) => e.code)).toEqual([ErrorCode.ERROR_CODE_INVALID_ARGUMENT]);
    expect(stream.status()).toBeUndefined();
  });

  it("over WebSocket: text and undecodable frames get typed errors in the session's event order", async () => {
    const { metrics, running } = await setup();
    const ws = new WebSocket(`ws://${running.httpAddress}${WEBSOCKET_PATH}`, WEBSOCKET_PROTOCOL);
    cleanups.push(() => ws.terminate());
    const events: ServerEvent[] = [];
    ws.on("message", (data: Buffer) => events.push(ServerEvent.decode(data)));
    await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
    ws.send(startEvent());
    await until(() => events.some((e) => e.event?.$case === "started"));
    ws.send("hello");
    ws.send(Buffer.from([0xff, 0xff]));
    ws.send(chunk(0, "still here"));
    await until(() => ackedSeqs(events).length === 1 && errorsOf(events).length === 2);
    const errors = errorsOf(events);
    expect(errors[0]!.message).toMatch(/malformed ClientEvent frame: a text frame/);
    expect(errors.every((e) => e.code === ErrorCode.ERROR_CODE_INVALID_ARGUMENT && e.eventSeq > 0)).toBe(true);
    expect(ws.readyState).toBe(WebSocket.OPEN);
    expect(await invalidArgumentCount(metrics)).toBe(2);
  });
});
