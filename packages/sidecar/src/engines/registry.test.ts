import { FinishReason } from "@microturn/protocol";
import { describe, expect, it } from "vitest";
import { EchoEngine } from "./echo/index.js";
import type { AppendResult, EngineSession } from "./engine.js";
import { EngineError } from "./errors.js";
import { createEngine, engineSessionSlots, type EngineConfig } from "./registry.js";
import { startTestServer } from "./sglang-grpc/test-server.js";

async function turn(session: EngineSession, text: string): Promise<{ text: string; done: AppendResult }> {
  let out = "";
  let done: AppendResult | undefined;
  for await (const o of session.append({ seq: 0, startMs: 0, durationMs: 200, text }, { maxOutputTokens: 8 })) {
    if (o.type === "delta") out += o.text;
    else done = o.done;
  }
  return { text: out, done: done! };
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  expect(EngineError.isInstance(error)).toBe(true);
  return (error as EngineError).code;
}

describe("engine registry", () => {
  it("builds the embedded engine on the tiny model when no model path is given", async () => {
    const logged: string[] = [];
    const engine = await createEngine({ engine: "embedded" }, { info: (msg) => logged.push(msg) });
    try {
      expect(engine.capabilities).toMatchObject({ engine: "embedded", randomWeights: true });
      expect(logged.join()).toMatch(/tiny random-weight model/);
      const session = await engine.openSession();
      expect((await turn(session, "hello")).done.inputTokens).toBeGreaterThan(0);
    } finally {
      await engine.dispose();
    }
  });

  it("builds the echo and sglang-grpc engines", async () => {
    const echo = await createEngine({ engine: "echo" });
    const server = await startTestServer(new EchoEngine());
    const grpc = await createEngine({ engine: "sglang-grpc", engineUrl: `grpc://${server.address}` });
    try {
      expect(echo.capabilities.engine).toBe("echo");
      expect(grpc.capabilities.engine).toBe("sglang-grpc");
      expect((await turn(await grpc.openSession(), "over the wire")).text).toBe("over the wire");
    } finally {
      await grpc.dispose();
      await echo.dispose();
      await server.stop();
    }
  });

  it("registers sglang-http and refuses configs it cannot serve", async () => {
    expect(await codeOf(createEngine({ engine: "sglang-http" }))).toBe("invalid_argument");
    expect(await codeOf(createEngine({ engine: "sglang-grpc" }))).toBe("invalid_argument");
    expect(await codeOf(createEngine({ engine: "nope" } as unknown as EngineConfig))).toBe("invalid_argument");
    expect(await codeOf(createEngine({ engine: "embedded", model: "/no/such/model.gguf" }))).toBe("invalid_model");
  });
});

describe("echo engine", () => {
  it("echoes the user's text token by token, is silent without text, and rewinds", async () => {
    const engine = new EchoEngine();
    const session = await engine.openSession();
    const spoken = await turn(session, "one two three");
    expect(spoken.text).toBe("one two three");
    expect(spoken.done).toMatchObject({ outputTokens: 3, positionTokens: session.positionTokens });
    const mark = session.positionTokens;
    const silent = await turn(session, "");
    expect(silent.done.finishReason).toBe(FinishReason.FINISH_REASON_SILENT);
    expect(session.positionTokens).toBeGreaterThan(mark);
    expect(await session.rewind(mark)).toBe(mark);
    expect(await codeOf(session.rewind(mark + 1))).toBe("rewind_out_of_range");
    await engine.dispose();
    expect(await codeOf(turn(session, "x"))).toBe("session_closed");
  });

  it("gives the engine sessions to spare beyond the sidecar's limit, for rollovers of a full sidecar", async () => {
    expect(engineSessionSlots(1)).toBe(3);
    expect(engineSessionSlots(1000)).toBe(1063);
    const engine = await createEngine({ engine: "echo", maxSessions: 2 } as EngineConfig);
    const sessions = await Promise.all([0, 1, 2, 3].map(() => engine.openSession({})));
    expect(sessions).toHaveLength(4);
    expect(await codeOf(engine.openSession({}))).toBe("unavailable");
    await engine.dispose();
  });
});
