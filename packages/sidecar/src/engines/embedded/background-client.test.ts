import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BackgroundDelta } from "../../background/client.js";
import { BackgroundError } from "../../background/errors.js";
import { createEmbeddedEngine, type EmbeddedEngine } from "./embedded-engine.js";
import { ensureTinyModel } from "./tiny-model.js";

async function collect(stream: AsyncIterable<BackgroundDelta>): Promise<BackgroundDelta[]> {
  const out: BackgroundDelta[] = [];
  for await (const d of stream) out.push(d);
  return out;
}

describe("embedded background client", () => {
  let engine: EmbeddedEngine;
  beforeAll(async () => {
    engine = await createEmbeddedEngine({ modelPath: ensureTinyModel({ dir: mkdtempSync(join(tmpdir(), "microturn-bg-")) }) });
  });
  afterAll(async () => {
    await engine?.dispose();
  });

  it("streams a completion from the engine's model, ending with done and usage", async () => {
    const client = await engine.createBackgroundClient();
    const messages = [{ role: "system" as const, content: "be brief" }, { role: "user" as const, content: "what time is it" }];
    const first = await collect(client.streamChat(messages, { maxTokens: 6 }));
    const again = await collect(client.streamChat(messages, { maxTokens: 6 }));
    expect(again).toEqual(first); // greedy: deterministic
    const done = first.at(-1)!;
    expect(done.type).toBe("done");
    if (done.type !== "done") return;
    expect(done.usage!.promptTokens).toBeGreaterThan(5);
    expect(done.usage!.completionTokens).toBeLessThanOrEqual(6);
    expect(done.finishReason === "length" ? done.usage!.completionTokens : 6).toBe(6);
    await client.close();
  });

  it("refuses bad requests with BackgroundError and stops on abort", async () => {
    const client = await engine.createBackgroundClient();
    const codeOf = async (stream: AsyncIterable<BackgroundDelta>): Promise<string> => {
      const error = await collect(stream).then(() => undefined, (e: unknown) => e);
      expect(BackgroundError.isInstance(error)).toBe(true);
      return (error as BackgroundError).code;
    };
    expect(await codeOf(client.streamChat([]))).toBe("invalid_argument");
    expect(await codeOf(client.streamChat([{ role: "user", content: "x" }], { maxTokens: 0 }))).toBe("invalid_argument");
    const controller = new AbortController();
    controller.abort();
    expect(await codeOf(client.streamChat([{ role: "user", content: "x" }], { signal: controller.signal }))).toBe("aborted");
  });
});
