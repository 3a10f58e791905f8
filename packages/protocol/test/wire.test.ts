// The generated code against a real grpc-js server and client over a loopback
// socket: every event variant round-trips, the generated encoding matches an
// independent protobufjs reading of proto/, and garbage on the wire is a gRPC
// error, not a crash.
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import protobuf from "protobufjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CLIENT_EVENT_NAMES,
  ClientEvent,
  InteractionClient,
  InteractionService,
  SERVER_EVENT_NAMES,
  ServerEvent,
  StreamingSessionClient,
  StreamingSessionService,
  FinishReason,
  isCompatibleProtocol,
  PROTOCOL_VERSION,
  type InteractionServer,
  type StreamingSessionServer,
} from "../src/index.js";
import { allClientEvents, allServerEvents } from "./fixtures.js";

const protoDir = join(__dirname, "../../../proto");

function loadReflection(): protobuf.Root {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => join(protoDir, target);
  root.loadSync(["microturn/v1/interaction.proto", "microturn/v1/engine.proto"], { keepCase: false });
  root.resolveAll();
  return root;
}

let server: grpc.Server;
let address: string;
const received: ClientEvent[] = [];

const interaction: InteractionServer = {
  converse(call) {
    call.on("data", (event: ClientEvent) => {
      received.push(event);
      if (event.event?.$case === "end") {
        for (const reply of allServerEvents) call.write(reply);
        call.end();
      }
    });
    call.on("error", () => undefined);
  },
};

const engine: StreamingSessionServer = {
  openSession(call, callback) {
    callback(null, { sessionId: call.request.sessionId || "generated", capabilities: undefined, positionTokens: 3, capacityTokens: 1024 });
  },
  append(call) {
    call.write({ event: { $case: "delta", value: { text: call.request.text.toUpperCase(), positionTokens: 9 } } });
    call.write({
      event: {
        $case: "done",
        value: {
          finishReason: FinishReason.FINISH_REASON_LENGTH,
          positionTokens: 9,
          inputEndTokens: 8,
          inputTokens: 5,
          outputTokens: 1,
          appendMs: 1.5,
          turnMs: 2.5,
          capacityTokens: 1024,
        },
      },
    });
    call.end();
  },
  rewind(call, callback) {
    if (call.request.positionTokens > 9) {
      callback({ code: grpc.status.OUT_OF_RANGE, details: "past the end" });
      return;
    }
    callback(null, { positionTokens: call.request.positionTokens, droppedTokens: 9 - call.request.positionTokens });
  },
  closeSession(_call, callback) {
    callback(null, { positionTokens: 9 });
  },
  health(_call, callback) {
    callback(null, { serving: true, activeSessions: 1, capabilities: undefined });
  },
};

beforeAll(async () => {
  server = new grpc.Server();
  server.addService(InteractionService, interaction);
  server.addService(StreamingSessionService, engine);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  address = `127.0.0.1:${port}`;
});

afterAll(() => server.forceShutdown());

describe("Interaction.Converse over a real socket", () => {
  it("carries every ClientEvent and ServerEvent variant unchanged", async () => {
    received.length = 0;
    const client = new InteractionClient(address, grpc.credentials.createInsecure());
    const call = client.converse();
    const replies: ServerEvent[] = [];
    const finished = new Promise<void>((resolve, reject) => {
      call.on("data", (event: ServerEvent) => replies.push(event));
      call.on("end", () => resolve());
      call.on("error", reject);
    });
    for (const event of allClientEvents) call.write(event);
    call.end();
    await finished;
    client.close();

    expect(received.map((e) => e.event?.$case)).toEqual([...CLIENT_EVENT_NAMES]);
    // JSON form compares bytes fields by value whatever their buffer class.
    expect(received.map(ClientEvent.toJSON)).toEqual(allClientEvents.map(ClientEvent.toJSON));
    expect(replies.map((e) => e.event?.$case)).toEqual([...SERVER_EVENT_NAMES]);
    expect(replies.map(ServerEvent.toJSON)).toEqual(allServerEvents.map(ServerEvent.toJSON));
  });

  it("encodes exactly as an independent reading of the .proto files", () => {
    const root = loadReflection();
    const Client = root.lookupType("microturn.v1.ClientEvent");
    const Server = root.lookupType("microturn.v1.ServerEvent");
    // The oneof cases the facade lists are the ones the proto declares.
    expect(Client.oneofs!.event!.fieldsArray.map((f) => f.name)).toEqual([...CLIENT_EVENT_NAMES]);
    expect(Server.oneofs!.event!.fieldsArray.map((f) => f.name)).toEqual([...SERVER_EVENT_NAMES]);
    for (const event of allClientEvents) {
      const bytes = ClientEvent.encode(event).finish();
      const viaReflection = Client.decode(bytes);
      expect(Client.encode(viaReflection).finish().length).toBe(bytes.length);
      expect(ClientEvent.toJSON(ClientEvent.decode(Client.encode(viaReflection).finish()))).toEqual(ClientEvent.toJSON(event));
    }
    for (const event of allServerEvents) {
      const bytes = ServerEvent.encode(event).finish();
      expect(ServerEvent.toJSON(ServerEvent.decode(Server.encode(Server.decode(bytes)).finish()))).toEqual(ServerEvent.toJSON(event));
    }
  });
});

describe("StreamingSession over a real socket", () => {
  it("runs open, append (server stream), rewind, close, health", async () => {
    const client = new StreamingSessionClient(address, grpc.credentials.createInsecure());
    const opened = await new Promise<{ sessionId: string }>((resolve, reject) =>
      client.openSession({ sessionId: "", capacityTokens: 512, idleTimeoutMs: 0, protocolVersion: PROTOCOL_VERSION, systemPrompt: "", audioOutput: false }, (err, res) =>
        err ? reject(err) : resolve(res),
      ),
    );
    expect(opened.sessionId).toBe("generated");

    const stream = client.append({
      sessionId: "generated",
      seq: 0,
      startMs: 0,
      durationMs: 200,
      text: "hi",
      audio: undefined,
      video: [],
      context: [],
      maxOutputTokens: 4,
      stop: [],
      temperature: 0,
    });
    const cases: string[] = [];
    for await (const message of stream) cases.push(message.event.$case);
    expect(cases).toEqual(["delta", "done"]);

    const rewound = await new Promise<{ positionTokens: number; droppedTokens: number }>((resolve, reject) =>
      client.rewind({ sessionId: "generated", positionTokens: 4 }, (err, res) => (err ? reject(err) : resolve(res))),
    );
    expect(rewound).toEqual({ positionTokens: 4, droppedTokens: 5 });
    const outOfRange = await new Promise<grpc.ServiceError>((resolve) =>
      client.rewind({ sessionId: "generated", positionTokens: 99 }, (err) => resolve(err!)),
    );
    expect(outOfRange.code).toBe(grpc.status.OUT_OF_RANGE);
    const health = await new Promise<{ serving: boolean }>((resolve, reject) =>
      client.health({}, (err, res) => (err ? reject(err) : resolve(res))),
    );
    expect(health.serving).toBe(true);
    client.close();
  });
});

describe("malformed bytes on the wire", () => {
  it("answer with a gRPC error and leave the server serving", async () => {
    const Raw = grpc.makeGenericClientConstructor(
      {
        converse: {
          path: InteractionService.converse.path,
          requestStream: true,
          responseStream: true,
          requestSerialize: (b: Buffer) => b,
          requestDeserialize: (b: Buffer) => b,
          responseSerialize: (b: Buffer) => b,
          responseDeserialize: (b: Buffer) => b,
        },
      },
      "RawInteraction",
    );
    const raw = new Raw(address, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
      converse(): grpc.ClientDuplexStream<Buffer, Buffer>;
    };
    const call = raw.converse();
    const failure = new Promise<grpc.ServiceError>((resolve) => call.on("error", resolve));
    call.on("data", () => undefined);
    // Field 4 (input) claims a 100-byte length but carries 3 bytes.
    call.write(Buffer.from([0x22, 0x64, 0x01, 0x02, 0x03]));
    const err = await failure;
    expect(err.code).toBe(grpc.status.INTERNAL);
    expect(err.details).toMatch(/deserializ/i);
    raw.close();

    // The same server still serves a well-formed session.
    const client = new InteractionClient(address, grpc.credentials.createInsecure());
    const ok = client.converse();
    const replies: ServerEvent[] = [];
    await new Promise<void>((resolve, reject) => {
      ok.on("data", (e: ServerEvent) => replies.push(e));
      ok.on("end", resolve);
      ok.on("error", reject);
      ok.write(allClientEvents[allClientEvents.length - 1]!);
      ok.end();
    });
    expect(replies).toHaveLength(SERVER_EVENT_NAMES.length);
    client.close();
  });
});

describe("protocol version", () => {
  it("accepts the same major version and refuses others", () => {
    expect(isCompatibleProtocol(PROTOCOL_VERSION)).toBe(true);
    expect(isCompatibleProtocol("1.7")).toBe(true);
    expect(isCompatibleProtocol("2.0")).toBe(false);
    expect(isCompatibleProtocol("garbage")).toBe(false);
  });
});
