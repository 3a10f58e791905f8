// The wire alone, for bench:sidecar: a Converse server in its own process that
// acks and answers each input chunk at once, with no session logic. What the
// sidecar adds over this is its own cost; what this adds over an in-process
// engine call is loopback gRPC and the wake-ups of two processes.
import * as grpc from "@grpc/grpc-js";
import { InteractionService, ServerEvent, type ClientEvent } from "@microturn/protocol";

const server = new grpc.Server();
server.addService(InteractionService, {
  converse(call: grpc.ServerDuplexStream<ClientEvent, ServerEvent>) {
    let eventSeq = 0;
    const send = (event: ServerEvent["event"]) => call.write(ServerEvent.fromPartial({ eventSeq: ++eventSeq, event }));
    call.on("data", (e: ClientEvent) => {
      const ev = e.event;
      if (ev?.$case === "start") send({ $case: "started", value: { sessionId: `floor-${eventSeq}` } });
      else if (ev?.$case === "input") {
        send({ $case: "inputAck", value: { seq: ev.value.seq } });
        send({ $case: "output", value: { seq: ev.value.seq, startMs: ev.value.startMs, durationMs: ev.value.durationMs, text: ev.value.text } });
      } else if (ev?.$case === "end") call.end();
    });
    call.on("end", () => call.end());
    call.on("error", () => undefined);
  },
} as unknown as grpc.UntypedServiceImplementation);
server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) throw err;
  console.log(`floor ready grpc=127.0.0.1:${port}`);
});
process.on("SIGTERM", () => server.forceShutdown());
