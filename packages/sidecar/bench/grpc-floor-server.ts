// The floor for bench:sidecar: the echo engine behind a bare Converse server in
// its own process, i.e. the engine called directly over the wire. Each input
// chunk is acked at once and appended to the stream's own engine session; its
// output goes back as it comes, with no session logic (no queue, history,
// deliveries, metrics or resume outbox). What the sidecar adds over this is
// its own cost; what this adds over an in-process engine call is loopback gRPC
// and the wake-ups of two processes.
import * as grpc from "@grpc/grpc-js";
import { InteractionService, ServerEvent, type ClientEvent } from "@microturn/protocol";
import { createEchoEngine } from "../src/engines/echo/index.js";
import type { EngineSession } from "../src/engines/engine.js";
import { encodeServerEvent } from "../src/server.js";

const engine = await createEchoEngine({ maxSessions: 100_000 });
const service = { ...InteractionService, converse: { ...InteractionService.converse, responseSerialize: encodeServerEvent } };
const server = new grpc.Server();
server.addService(service, {
  converse(call: grpc.ServerDuplexStream<ClientEvent, ServerEvent>) {
    let eventSeq = 0;
    let session: Promise<EngineSession> | undefined;
    /** Appends run one after another, as an engine session takes them. */
    let turns: Promise<void> = Promise.resolve();
    const send = (event: ServerEvent["event"]) => call.write({ eventSeq: ++eventSeq, event });
    const turn = async (chunk: { seq: number; startMs: number; durationMs: number; text: string }) => {
      let text = "";
      for await (const out of (await session!).append(chunk, { maxOutputTokens: 4 })) if (out.type === "delta") text += out.text;
      send({ $case: "output", value: { seq: chunk.seq, startMs: chunk.startMs, durationMs: chunk.durationMs, text, silent: text === "", latencyMs: 0, finishReason: 0 } });
    };
    call.on("data", (e: ClientEvent) => {
      const ev = e.event;
      if (ev?.$case === "start") {
        session = engine.openSession({});
        void session.then((s) => send(ServerEvent.fromPartial({ event: { $case: "started", value: { sessionId: s.id } } }).event));
      } else if (ev?.$case === "input" && session) {
        send({ $case: "inputAck", value: { seq: ev.value.seq, duplicate: false, queueDepth: 0 } });
        const chunk = ev.value;
        turns = turns.then(() => turn(chunk)).catch(() => undefined);
      } else if (ev?.$case === "end") void turns.then(() => call.end());
    });
    call.on("end", () => void turns.then(() => call.end()));
    call.on("close", () => void session?.then((s) => s.close()));
    call.on("error", () => undefined);
  },
} as unknown as grpc.UntypedServiceImplementation);
server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) throw err;
  console.log(`floor ready grpc=127.0.0.1:${port}`);
});
process.on("SIGTERM", () => server.forceShutdown());
