// The benchmark's lean gRPC client reads server events by hand: checked against
// the generated encoder, and against a real server over loopback.
import { ClientEvent, ErrorCode, PROTOCOL_VERSION, ServerEvent } from "@microturn/protocol";
import { afterEach, describe, expect, it } from "vitest";
import { createEchoEngine } from "../src/engines/echo/index.js";
import { createLogger } from "../src/logger.js";
import { SidecarMetrics } from "../src/metrics.js";
import { startServer, type RunningServer } from "../src/server.js";
import { SessionHub } from "../src/session/session-hub.js";
import { encodeClientEvent, EVENT, FrameReader, grpcFrame, LeanConverseClient, peekServerEvent } from "../bench/lean-client.js";

const bytes = (event: ServerEvent) => Buffer.from(ServerEvent.encode(event).finish());
const partial = ServerEvent.fromPartial;

describe("lean client", () => {
  it("reads a server event's case and seq as the generated decoder does", () => {
    expect(peekServerEvent(bytes(partial({ eventSeq: 300, event: { $case: "output", value: { seq: 1_000_000, text: "hi", latencyMs: 1.5 } } })))).toEqual({ field: EVENT.output, seq: 1_000_000 });
    expect(peekServerEvent(bytes(partial({ eventSeq: 1, event: { $case: "inputAck", value: { seq: 0, queueDepth: 3 } } })))).toEqual({ field: EVENT.inputAck, seq: 0 });
    expect(peekServerEvent(bytes(partial({ eventSeq: 2, event: { $case: "inputAck", value: { seq: 129 } } })))).toEqual({ field: EVENT.inputAck, seq: 129 });
    expect(peekServerEvent(bytes(partial({ eventSeq: 0, event: { $case: "started", value: { sessionId: "s" } } }))).field).toBe(EVENT.started);
    expect(peekServerEvent(bytes(partial({ eventSeq: 9, event: { $case: "error", value: { code: ErrorCode.ERROR_CODE_INVALID_ARGUMENT, message: "m", seq: 7 } } }))).field).toBe(EVENT.error);
    expect(peekServerEvent(bytes(partial({ eventSeq: 9 })))).toEqual({ field: 0, seq: 0 });
  });

  it("splits gRPC frames however the bytes are chunked", () => {
    const messages = [bytes(partial({ eventSeq: 1, event: { $case: "inputAck", value: { seq: 5 } } })), Buffer.alloc(0), bytes(partial({ eventSeq: 2, event: { $case: "output", value: { seq: 5, text: "x".repeat(300) } } }))];
    const stream = Buffer.concat(messages.map(grpcFrame));
    for (const step of [1, 2, 5, 7, stream.length]) {
      const reader = new FrameReader();
      const seen: Buffer[] = [];
      for (let at = 0; at < stream.length; at += step) reader.push(stream.subarray(at, at + step), (m) => seen.push(Buffer.from(m)));
      expect(seen).toEqual(messages);
    }
  });

  describe("against the real server", () => {
    let running: RunningServer | undefined;
    afterEach(async () => {
      await running?.close();
      running = undefined;
    });

    it("opens a session, gets an ack and an output per chunk, and ends", async () => {
      const logger = createLogger("error");
      const hub = new SessionHub({ engine: await createEchoEngine(), limits: { maxOutputTokensPerTurn: 4, maxQueuedChunks: 50 }, maxSessions: 4, resumeGraceMs: 1000, recordDir: "", logger });
      running = await startServer({ hub, logger, metrics: new SidecarMetrics(false), apiKey: "", host: "127.0.0.1", port: 0, httpPort: -1, isServing: () => true });
      const client = new LeanConverseClient(running.grpcAddress, 1);
      const seen: [number, number][] = [];
      let outputs = 0;
      let done!: () => void;
      const twoOutputs = new Promise<void>((resolve) => (done = resolve));
      const stream = client.open((field, seq) => {
        seen.push([field, seq]);
        if (field === EVENT.output && ++outputs === 2) done();
      });
      stream.write(encodeClientEvent(ClientEvent.fromPartial({ event: { $case: "start", value: { protocolVersion: PROTOCOL_VERSION, config: { chunkDurationMs: 200 } } } })));
      for (const seq of [0, 1]) stream.write(encodeClientEvent(ClientEvent.fromPartial({ event: { $case: "input", value: { seq, startMs: seq * 200, durationMs: 200, text: "hello" } } })));
      await twoOutputs;
      stream.write(encodeClientEvent(ClientEvent.fromPartial({ event: { $case: "end", value: { reason: "test" } } })));
      await stream.end(2000);
      client.close();
      const of = (field: number) => seen.filter(([f]) => f === field).map(([, seq]) => seq);
      expect(seen[0]).toEqual([EVENT.started, 0]);
      expect(of(EVENT.inputAck)).toEqual([0, 1]);
      expect(of(EVENT.output)).toEqual([0, 1]);
      expect(of(EVENT.error)).toEqual([]);
      expect(seen.at(-1)![0]).toBe(10); // SessionEnded
    });
  });
});
