import { getEventListeners } from "node:events";
import { Modality } from "@microturn/protocol";
import { describe, expect, it } from "vitest";
import { EngineError } from "../errors.js";
import { createEchoEngine } from "./index.js";

const audio = { frames: 20, channels: 80, codes: new Uint8Array(20 * 80) };
const video = { patchSizePx: 40, rows: 12, cols: 16, rgb: new Uint8Array(12 * 16 * 40 * 40 * 3), offsetMs: 0 };

async function drain(it: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of it) void _;
}

describe("echo engine", () => {
  it("takes text only unless opened with media", async () => {
    const engine = await createEchoEngine();
    expect(engine.capabilities.inputModalities).toEqual([Modality.MODALITY_TEXT]);
    const session = await engine.openSession({});
    const refused = drain(session.append({ seq: 0, startMs: 0, durationMs: 200, text: "", audio }, { maxOutputTokens: 0 }));
    await expect(refused).rejects.toSatisfy((err: unknown) => EngineError.isInstance(err) && err.code === "unsupported_modality");
    // The refused chunk left the session as it was.
    expect(session.positionTokens).toBe(0);
  });

  it("with media, counts a token per dMel frame and per patch, and rewinds over them", async () => {
    const engine = await createEchoEngine({ media: true });
    expect(engine.capabilities.inputModalities).toEqual([Modality.MODALITY_TEXT, Modality.MODALITY_AUDIO, Modality.MODALITY_VIDEO]);
    const session = await engine.openSession({});
    const bare = await engine.openSession({});
    await drain(bare.append({ seq: 0, startMs: 0, durationMs: 200, text: "" }, { maxOutputTokens: 0 }));
    const marker = bare.positionTokens;
    await drain(session.append({ seq: 0, startMs: 0, durationMs: 200, text: "", audio, video: [video] }, { maxOutputTokens: 0 }));
    const afterFirst = session.positionTokens;
    expect(afterFirst).toBe(marker + 20 + 12 * 16);
    await drain(session.append({ seq: 1, startMs: 200, durationMs: 200, text: "", audio }, { maxOutputTokens: 0 }));
    expect(session.positionTokens).toBeGreaterThanOrEqual(afterFirst + 20);
    await session.rewind(afterFirst);
    expect(session.positionTokens).toBe(afterFirst);
  });

  it("refuses forceTool before appending anything, and the session goes on", async () => {
    const engine = await createEchoEngine();
    const session = await engine.openSession({ systemPrompt: "be brief" });
    const before = session.positionTokens;
    const refused = drain(session.append({ seq: 0, startMs: 0, durationMs: 200, text: "call someone" }, { maxOutputTokens: 4, forceTool: { name: "lookup_contact", parametersJson: "{}" } }));
    await expect(refused).rejects.toSatisfy((err: unknown) => EngineError.isInstance(err) && err.code === "invalid_argument" && /echo.*"lookup_contact"/.test(err.message));
    expect(session.positionTokens).toBe(before);
    await drain(session.append({ seq: 0, startMs: 0, durationMs: 200, text: "call someone" }, { maxOutputTokens: 0 }));
    expect(session.positionTokens).toBeGreaterThan(before);
  });

  it("leaves no listener on a signal that outlives its appends (a session-long one)", async () => {
    const engine = await createEchoEngine({ tokenDelayMs: 1 });
    const session = await engine.openSession({});
    const controller = new AbortController();
    for (let seq = 0; seq < 20; seq++) await drain(session.append({ seq, startMs: seq * 200, durationMs: 200, text: "one two three" }, { maxOutputTokens: 3, signal: controller.signal }));
    expect(getEventListeners(controller.signal, "abort")).toHaveLength(0);
  });
});
