// An in-process SglangScheduler gRPC server on 127.0.0.1 for tests: checks
// that requests are tokenized, and streams a scripted reply as token ids
// (tokenized with the test's tokenizer), an error status, or nothing.
import { createHash } from "node:crypto";
import { Server, ServerCredentials, status, type ServerWritableStream } from "@grpc/grpc-js";
import type { GetTokenizerChunk, GetTokenizerRequest } from "../../gen/sglang/common.js";
import { SglangSchedulerService, type GenerateRequest, type GenerateResponse, type SglangSchedulerServer } from "../../gen/sglang/sglang_scheduler.js";

export type GrpcScenario =
  /** Streams `replyIds` in chunks of `idsPerChunk`, then a GenerateComplete. */
  | { kind: "reply"; replyIds: number[]; idsPerChunk?: number; delayMs?: number; finishReason?: string }
  /** Ends the call with this gRPC status. */
  | { kind: "status"; code: status; details: string }
  /** Never answers. */
  | { kind: "hang" };

export interface SglangGrpcTestServer {
  address: string;
  requests: GenerateRequest[];
  /** Request ids whose call the client cancelled. */
  cancelled: string[];
  setScript(script: GrpcScenario | ((request: GenerateRequest) => GrpcScenario)): void;
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function unimplemented(_call: unknown, callback: (err: { code: status; details: string }) => void): void {
  callback({ code: status.UNIMPLEMENTED, details: "not served by the test server" });
}

export interface SglangGrpcTestServerOptions {
  /** Served by GetTokenizer as-is (a ZIP archive, see zip-writer.ts), in chunks of `tokenizerChunkBytes`. */
  tokenizerArchive?: Buffer;
  tokenizerChunkBytes?: number;
  /** Announce this SHA-256 instead of the archive's own (to test the check). */
  tokenizerSha256?: string;
}

export async function startSglangGrpcTestServer(
  initial: GrpcScenario | ((request: GenerateRequest) => GrpcScenario),
  options: SglangGrpcTestServerOptions = {},
): Promise<SglangGrpcTestServer> {
  let script = initial;
  const requests: GenerateRequest[] = [];
  const cancelled: string[] = [];
  const generate = async (call: ServerWritableStream<GenerateRequest, GenerateResponse>) => {
    const request = call.request;
    requests.push(request);
    let isCancelled = false;
    call.on("cancelled", () => {
      isCancelled = true;
      cancelled.push(request.requestId);
    });
    if (request.tokenized === undefined || request.tokenized.inputIds.length === 0) {
      call.emit("error", { code: status.INVALID_ARGUMENT, details: "Tokenized input must be provided" });
      return;
    }
    const scenario = typeof script === "function" ? script(request) : script;
    if (scenario.kind === "hang") return;
    if (scenario.kind === "status") {
      call.emit("error", { code: scenario.code, details: scenario.details });
      return;
    }
    const step = scenario.idsPerChunk ?? 2;
    let sent = 0;
    for (let i = 0; i < scenario.replyIds.length; i += step) {
      if (scenario.delayMs !== undefined) await sleep(scenario.delayMs);
      if (isCancelled) return;
      const tokenIds = scenario.replyIds.slice(i, i + step);
      sent += tokenIds.length;
      call.write({
        requestId: request.requestId,
        response: { $case: "chunk", value: { tokenIds, promptTokens: request.tokenized.inputIds.length, completionTokens: sent, cachedTokens: 0, reasoningTokens: 0, hiddenStates: [], index: 0 } },
      });
    }
    call.write({
      requestId: request.requestId,
      response: {
        $case: "complete",
        value: {
          outputIds: scenario.replyIds,
          finishReason: scenario.finishReason ?? "stop",
          promptTokens: request.tokenized.inputIds.length,
          completionTokens: scenario.replyIds.length,
          cachedTokens: 0,
          reasoningTokens: 0,
          allHiddenStates: [],
          index: 0,
          specAcceptedTokens: 0,
          specDraftTokens: 0,
        },
      },
    });
    call.end();
  };
  const getTokenizer = (call: ServerWritableStream<GetTokenizerRequest, GetTokenizerChunk>) => {
    const archive = options.tokenizerArchive;
    if (archive === undefined) {
      call.emit("error", { code: status.FAILED_PRECONDITION, details: "Tokenizer path is not configured on this server." });
      return;
    }
    const sha256 = options.tokenizerSha256 ?? createHash("sha256").update(archive).digest("hex");
    const step = options.tokenizerChunkBytes ?? 64 * 1024;
    for (let i = 0; i < archive.length; i += step) {
      const end = Math.min(i + step, archive.length);
      call.write({ data: archive.subarray(i, end), sha256: end === archive.length ? sha256 : "" });
    }
    call.end();
  };
  const implementation = new Proxy({ generate, getTokenizer } as Partial<SglangSchedulerServer>, {
    get: (target, key) => (key in target ? target[key as keyof SglangSchedulerServer] : unimplemented),
  }) as SglangSchedulerServer;
  const server = new Server();
  server.addService(SglangSchedulerService, implementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, bound) => (err === null ? resolve(bound) : reject(err))),
  );
  return {
    address: `127.0.0.1:${port}`,
    requests,
    cancelled,
    setScript(next) {
      script = next;
    },
    close: async () => server.forceShutdown(),
  };
}
