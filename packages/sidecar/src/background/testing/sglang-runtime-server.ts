// An in-process sglang.runtime.v1.SglangService (HealthCheck and ChatComplete) on
// 127.0.0.1 for tests, answering as SGLang's native gRPC server does: each
// chat-completion chunk its OpenAI layer would stream over HTTP goes out as one
// OpenAIStreamChunk (no [DONE]), then an empty chunk with `finished`; a failure
// ends the call with a status. Each request body is recorded.
import { Server, ServerCredentials, status, type ServerWritableStream } from "@grpc/grpc-js";
import { SglangServiceService, type OpenAIRequest, type OpenAIStreamChunk } from "../../gen/sglang/runtime/sglang_runtime.js";
import { streamEvents, type RecordedRequest, type Scenario } from "./openai-server.js";

export type RuntimeScenario =
  | Extract<Scenario, { kind: "stream" } | { kind: "raw" } | { kind: "hang" }>
  /** Ends the call with this gRPC status (how the server reports a request it refused or failed). */
  | { kind: "status"; code: status; details: string };

export interface SglangRuntimeTestServer {
  address: string;
  requests: RecordedRequest["body"][];
  /** Calls the client cancelled before they ended. */
  readonly cancelled: number;
  setScript(script: RuntimeScenario): void;
  /** What HealthCheck answers: healthy (default), not healthy, or UNIMPLEMENTED (another service on the port). */
  setHealth(health: "healthy" | "unhealthy" | "unimplemented"): void;
  close(): Promise<void>;
}

export async function startSglangRuntimeTestServer(initial: RuntimeScenario = { kind: "stream", content: ["ok"] }): Promise<SglangRuntimeTestServer> {
  let script = initial;
  const requests: RecordedRequest["body"][] = [];
  let cancelled = 0;
  let health: "healthy" | "unhealthy" | "unimplemented" = "healthy";
  const server = new Server();
  server.addService(SglangServiceService, {
    healthCheck: (_call: unknown, callback: (err: { code: status; details: string } | null, response?: { healthy: boolean }) => void) => {
      if (health === "unimplemented") callback({ code: status.UNIMPLEMENTED, details: "Method not found!" });
      else callback(null, { healthy: health === "healthy" });
    },
    chatComplete: (call: ServerWritableStream<OpenAIRequest, OpenAIStreamChunk>) => {
      let gone = false;
      call.on("cancelled", () => {
        gone = true;
        cancelled++;
      });
      const body = JSON.parse(call.request.jsonBody.toString("utf8")) as RecordedRequest["body"];
      requests.push(body);
      const scenario = script;
      const send = (data: string) => {
        if (!gone) call.write({ jsonChunk: Buffer.from(data), finished: false });
      };
      void (async () => {
        switch (scenario.kind) {
          case "hang":
            return;
          case "status":
            call.emit("error", { code: scenario.code, details: scenario.details });
            return;
          case "raw":
            // Verbatim, as a test wants them (a [DONE] included).
            for (const data of scenario.events) send(data);
            break;
          case "stream":
            // As SGLang's bridge does: the SSE events but [DONE].
            for await (const data of streamEvents(scenario)) if (data !== "[DONE]") send(data);
            break;
        }
        if (gone) return;
        call.write({ jsonChunk: Buffer.alloc(0), finished: true });
        call.end();
      })();
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, bound) => (err ? reject(err) : resolve(bound))),
  );
  return {
    address: `127.0.0.1:${port}`,
    requests,
    get cancelled() {
      return cancelled;
    },
    setScript(next) {
      script = next;
    },
    setHealth(next) {
      health = next;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.forceShutdown();
        resolve();
      }),
  };
}
