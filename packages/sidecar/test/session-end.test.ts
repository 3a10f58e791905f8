// A session ended while its micro-turn is still in the engine: what the rest of
// that turn's output holds is not acted on (the session is gone).
import { describe, expect, it } from "vitest";
import { createLogger } from "../src/logger.js";
import type { DelegateRequest } from "../src/session/ports.js";
import { SessionHub } from "../src/session/session-hub.js";
import { ServerToolRegistry } from "../src/tools/registry.js";
import { RegistrySessionTools } from "../src/tools/session-tools.js";
import { FakeEngine } from "./helpers/fake-engine.js";
import { recordingBackground } from "../src/session/testing/recording-background.js";
import { TestClient } from "./helpers/test-client.js";

describe("a session ended during a micro-turn", () => {
  it("starts no background task from a delegate call in the cut turn's output (nothing would ever cancel it)", async () => {
    // The engine goes on answering after the abort, as a remote one may with output already buffered.
    const engine = new FakeEngine({ delayMs: 150, reply: () => '<tool_call>{"name":"delegate","arguments":{"task":"late"}}</tool_call>' });
    const started: DelegateRequest[] = [];
    const background = recordingBackground(started);
    const hub = new SessionHub({
      engine,
      limits: { maxOutputTokensPerTurn: 400, maxQueuedChunks: 50 },
      maxSessions: 4,
      resumeGraceMs: 1000,
      recordDir: "",
      logger: createLogger("error"),
      createBackground: () => background,
      createTools: () => new RegistrySessionTools({ registry: new ServerToolRegistry() }),
      endWaitMs: 10,
    });
    const handle = await hub.create(TestClient.config(), { send: () => undefined });
    handle.session.acceptInput({ seq: 0, startMs: 0, durationMs: 200, text: "hi", toolChoice: "", userSpeaking: false, frames: [], patches: [] });
    await new Promise((r) => setTimeout(r, 20));
    await hub.end(handle, "bye");
    await new Promise((r) => setTimeout(r, 250));
    expect(engine.sessions[0]!.appended.map((c) => c.seq)).toEqual([0]); // the engine did answer
    expect(started).toEqual([]);
  });
});
