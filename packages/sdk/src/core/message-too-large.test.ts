// A message over the server's size limit ends the session with a non-retryable BadRequestError on either
// transport (gRPC RESOURCE_EXHAUSTED "… message larger than max", WebSocket close 1009): a resume would send the
// same chunk and fail again, for ever. Other RESOURCE_EXHAUSTED stays retryable.
import { Server, ServerCredentials, status as GrpcStatus, type ServerDuplexStream } from "@grpc/grpc-js";
import { type ClientEvent, InteractionService, PROTOCOL_VERSION, type ServerEvent, SessionStarted } from "@microturn/protocol";
import { afterEach, describe, expect, it } from "vitest";
import { WebSocket, WebSocketServer } from "ws";
import { Microturn } from "../client.js";
import { Microturn as BrowserMicroturn } from "../browser.js";
import { BadRequestError, type MicroturnError, ResourceExhaustedError } from "./error.js";
import { errorFromGrpcStatus, GrpcCode } from "./grpc-error.js";
import type { InteractionSession } from "./session.js";
import { closeCodeError, type WebSocketConstructor } from "./websocket-transport.js";
import { type FakeSidecar, startFakeSidecar } from "../testing/fake-sidecar.js";

const WS = WebSocket as unknown as WebSocketConstructor;
const LIMIT_BYTES = 64 * 1024;
const cleanups: Array<() => Promise<void>> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** How a session ended, and the resumes it tried on the way. */
function watch(session: InteractionSession): { reconnecting: number; closed: Promise<MicroturnError | undefined> } {
  const seen = { reconnecting: 0, closed: new Promise<MicroturnError | undefined>((resolve) => session.once("close", ({ error }) => resolve(error))) };
  session.on("reconnecting", () => seen.reconnecting++);
  session.on("error", () => undefined);
  cleanups.push(() => session.close({ timeoutMs: 200 }));
  return seen;
}

function expectTooLarge(error: unknown): void {
  expect(BadRequestError.isInstance(error)).toBe(true);
  expect(error).toMatchObject({ retryable: false, status: 413, grpcCode: GrpcCode.RESOURCE_EXHAUSTED });
}

describe("message over the size limit", () => {
  it("maps grpc-js's 'larger than max' RESOURCE_EXHAUSTED and close 1009 to a non-retryable BadRequestError", () => {
    for (const details of [
      "Received message larger than max (16777300 vs. 16777216)",
      "Sent message larger than max (16777300 vs. 16777216)",
      "Received message that decompresses to a size larger than 16777216",
    ]) {
      expectTooLarge(errorFromGrpcStatus({ code: GrpcCode.RESOURCE_EXHAUSTED, details }));
    }
    expectTooLarge(closeCodeError(1009, "Max payload size exceeded"));
    expect(closeCodeError(1009, "")?.message).toMatch(/code 1009/);
    // A full queue or a session limit is worth a retry, as before.
    const queueFull = errorFromGrpcStatus({ code: GrpcCode.RESOURCE_EXHAUSTED, details: "input queue full" });
    expect(ResourceExhaustedError.isInstance(queueFull)).toBe(true);
    expect(queueFull.retryable).toBe(true);
    expect(BadRequestError.isInstance(errorFromGrpcStatus({ code: GrpcCode.UNAVAILABLE, details: "message larger than max" }))).toBe(false);
  });

  it("over WebSocket: a close with 1009 ends the session without a resume", async () => {
    // The fake sidecar's WebSocket server with a small maxPayload, as the sidecar's is 16 MiB.
    class SmallPayloadServer extends WebSocketServer {
      constructor(options: ConstructorParameters<typeof WebSocketServer>[0]) {
        super({ ...options, maxPayload: LIMIT_BYTES });
        // ws reports the oversize message as an error on the server's socket too (the sidecar listens for it).
        this.on("connection", (socket) => socket.on("error", () => undefined));
      }
    }
    const fake = await startFakeSidecar({ webSocketServer: SmallPayloadServer });
    cleanups.push(() => fake.close());
    const session = await new BrowserMicroturn({ url: fake.wsUrl, WebSocket: WS, clock: "manual", reconnect: { initialDelayMs: 1, maxAttempts: 3 } }).connect();
    const seen = watch(session);
    session.sendChunk({ text: "x".repeat(LIMIT_BYTES + 1) });
    const error = await seen.closed;
    expectTooLarge(error);
    expect(error?.message).toMatch(/code 1009/);
    expect(seen.reconnecting).toBe(0);
    expect(fake.streamsOpened).toBe(1);
  });

  it("over gRPC: the server's RESOURCE_EXHAUSTED 'Received message larger than max' ends the session without a resume", async () => {
    let streams = 0;
    const server = new Server({ "grpc.max_receive_message_length": LIMIT_BYTES });
    server.addService(InteractionService, {
      converse: (call: ServerDuplexStream<ClientEvent, ServerEvent>) => {
        streams++;
        call.on("error", () => undefined);
        call.on("data", (event: ClientEvent) => {
          const body = event.event;
          if (body?.$case === "start" || body?.$case === "resume") {
            const started = SessionStarted.fromPartial({ sessionId: "s1", resumeToken: "t1", protocolVersion: PROTOCOL_VERSION, resumed: body.$case === "resume" });
            call.write({ eventSeq: 0, event: { $case: "started", value: started } });
          } else if (body?.$case === "input") {
            call.write({ eventSeq: 0, event: { $case: "inputAck", value: { seq: body.value.seq, duplicate: false, queueDepth: 0 } } });
          }
        });
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
    );
    cleanups.push(async () => void server.forceShutdown());
    const session = await new Microturn({ url: `grpc://127.0.0.1:${port}`, clock: "manual", reconnect: { initialDelayMs: 1, maxAttempts: 3 } }).connect();
    const seen = watch(session);
    session.sendChunk({ text: "x".repeat(LIMIT_BYTES + 1) });
    const error = await seen.closed;
    expectTooLarge(error);
    expect(error?.message).toMatch(/Received message larger than max/);
    expect(seen.reconnecting).toBe(0);
    expect(streams).toBe(1);
  });

  it("over gRPC: another RESOURCE_EXHAUSTED still resumes", async () => {
    const fake: FakeSidecar = await startFakeSidecar();
    cleanups.push(() => fake.close());
    const session = await new Microturn({ url: fake.url, clock: "manual", reconnect: { initialDelayMs: 1 } }).connect();
    const seen = watch(session);
    let reconnected = 0;
    session.on("reconnected", () => reconnected++);
    session.sendChunk({ text: "0" });
    await fake.waitFor(() => fake.session().accepted.length === 1);
    fake.dropStream(undefined, GrpcStatus.RESOURCE_EXHAUSTED);
    await fake.waitFor(() => reconnected === 1);
    expect(seen.reconnecting).toBe(1);
    expect(session.state).toBe("open");
  });
});
