import { Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { ERROR_CODE_TRAILER, toEngineError } from "./errors.js";

function serviceError(code: status, details: string, trailer?: string): ServiceError {
  const metadata = new Metadata();
  if (trailer) metadata.set(ERROR_CODE_TRAILER, trailer);
  return Object.assign(new Error(`${code} ${details}`), { code, details, metadata });
}

describe("sglang-grpc errors", () => {
  it("takes the engine code from the trailer first: a full KV pool is unavailable, not a full sequence", () => {
    expect(toEngineError(serviceError(status.RESOURCE_EXHAUSTED, "KV pool has no free slot", "unavailable"), "open").code).toBe("unavailable");
    expect(toEngineError(serviceError(status.RESOURCE_EXHAUSTED, "sequence full", "too_large"), "append").code).toBe("too_large");
    // A trailer naming no engine code is ignored.
    expect(toEngineError(serviceError(status.NOT_FOUND, "gone", "no-such-code"), "append").code).toBe("unknown_session");
  });

  it("without a trailer, RESOURCE_EXHAUSTED is a full sequence, unless grpc-js refused an oversize message itself", () => {
    expect(toEngineError(serviceError(status.RESOURCE_EXHAUSTED, "capacity exceeded"), "append").code).toBe("too_large");
    const local = toEngineError(serviceError(status.RESOURCE_EXHAUSTED, "Received message larger than max (5000000 vs. 4194304)"), "append", "s1");
    expect(local.code).toBe("internal");
    expect(local.message).toMatch(/larger than max/);
    expect(local.sessionId).toBe("s1");
  });

  it("maps FAILED_PRECONDITION by operation, and other failures to internal", () => {
    expect(toEngineError(serviceError(status.FAILED_PRECONDITION, "busy"), "append").code).toBe("busy");
    expect(toEngineError(serviceError(status.FAILED_PRECONDITION, "version"), "open").code).toBe("invalid_argument");
    expect(toEngineError(new Error("boom"), "append").code).toBe("internal");
  });
});

describe("sglang-grpc against a server that breaks the contract", () => {
  it("takes done as final (later messages are ignored) and maps a local oversize refusal to internal", async () => {
    const { Server, ServerCredentials } = await import("@grpc/grpc-js");
    const { PROTOCOL_VERSION, StreamingSessionService } = await import("@microturn/protocol");
    const { createSglangGrpcEngine } = await import("./index.js");
    const server = new Server();
    const capabilities = { engine: "x", modelId: "m", inputModalities: [1], outputModalities: [1], supportsRewind: true, protocolVersion: PROTOCOL_VERSION, maxContextTokens: 1000, randomWeights: false };
    server.addService(StreamingSessionService, {
      openSession: (_call: unknown, cb: (e: null, r: unknown) => void) => cb(null, { sessionId: "s1", positionTokens: 0, capacityTokens: 1000, capabilities }),
      append: (call: { request: { text: string }; write(m: unknown): void; end(): void }) => {
        if (call.request.text.includes("HUGE")) {
          call.write({ event: { $case: "delta", value: { text: "x".repeat(5 * 1024 * 1024), positionTokens: 10 } } });
        } else {
          call.write({ event: { $case: "done", value: { finishReason: 2, positionTokens: 5, inputEndTokens: 4, inputTokens: 4, outputTokens: 1, appendMs: 1, turnMs: 1, capacityTokens: 1000 } } });
          call.write({ event: { $case: "delta", value: { text: "after-done", positionTokens: 99 } } });
        }
        call.end();
      },
      rewind: (_c: unknown, cb: (e: null, r: unknown) => void) => cb(null, {}),
      closeSession: (_c: unknown, cb: (e: null, r: unknown) => void) => cb(null, {}),
      health: (_c: unknown, cb: (e: null, r: unknown) => void) => cb(null, { serving: true, activeSessions: 0, capabilities }),
    } as never);
    const port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    const engine = await createSglangGrpcEngine({ address: `127.0.0.1:${port}` });
    try {
      const session = await engine.openSession({});
      const seen: string[] = [];
      for await (const out of session.append({ seq: 0, startMs: 0, durationMs: 200, text: "ok" }, { maxOutputTokens: 3 })) seen.push(out.type);
      expect(seen).toEqual(["done"]);
      expect(session.positionTokens).toBe(5);
      const failure = await (async () => {
        for await (const _ of session.append({ seq: 1, startMs: 200, durationMs: 200, text: "HUGE" }, { maxOutputTokens: 3 })) void _;
      })().catch((e: unknown) => e);
      expect((failure as { code?: string }).code).toBe("internal");
    } finally {
      await engine.dispose();
      server.forceShutdown();
    }
  });
});
