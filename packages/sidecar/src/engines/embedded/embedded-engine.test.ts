import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FinishReason, Modality } from "@microturn/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AppendOptions, AppendResult, EngineChunk, EngineOutput, EngineSession } from "../engine.js";
import { EngineError } from "../errors.js";
import { createEmbeddedEngine, type EmbeddedEngine } from "./embedded-engine.js";
import type { EmbeddedSession } from "./embedded-session.js";
import { ensureTinyModel } from "./tiny-model.js";

const chunk = (seq: number, text = "hello world"): EngineChunk => ({ seq, startMs: seq * 200, durationMs: 200, text });

async function run(session: EngineSession, c: EngineChunk, options: AppendOptions): Promise<{ text: string; deltas: EngineOutput[]; done: AppendResult }> {
  const deltas: EngineOutput[] = [];
  let done: AppendResult | undefined;
  for await (const out of session.append(c, options)) {
    if (out.type === "done") done = out.done;
    else deltas.push(out);
  }
  if (!done) throw new Error("no done");
  return { text: deltas.map((d) => (d.type === "delta" ? d.text : "")).join(""), deltas, done };
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<void> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  expect(EngineError.isInstance(error), `expected EngineError(${code}), got ${String(error)}`).toBe(true);
  expect((error as EngineError).code).toBe(code);
}

describe("embedded engine on the tiny model", () => {
  let engine: EmbeddedEngine;
  const dir = mkdtempSync(join(tmpdir(), "microturn-embedded-"));

  beforeAll(async () => {
    engine = await createEmbeddedEngine({ modelPath: ensureTinyModel({ dir }), seed: 7 });
  });
  afterAll(async () => {
    await engine?.dispose();
  });

  it("reports text-only capabilities of a random-weight model", () => {
    expect(engine.capabilities.engine).toBe("embedded");
    expect(engine.capabilities.inputModalities).toEqual([Modality.MODALITY_TEXT]);
    expect(engine.capabilities.supportsRewind).toBe(true);
    expect(engine.capabilities.randomWeights).toBe(true);
  });

  it("appends only the new tokens: the position grows by exactly input + output, nothing is re-evaluated", async () => {
    const session = (await engine.openSession({ capacityTokens: 2048 })) as EmbeddedSession;
    const start = session.positionTokens;
    expect(start).toBe(1); // BOS
    for (let seq = 0; seq < 20; seq++) {
      const before = session.positionTokens;
      const evaluatedBefore = session.evaluatedTokens;
      const prefix = session.contextTokens.slice();
      const { done } = await run(session, chunk(seq), { maxOutputTokens: 3 });
      expect(done.inputEndTokens).toBe(before + done.inputTokens);
      expect(done.positionTokens).toBe(done.inputEndTokens + done.outputTokens);
      expect(session.positionTokens).toBe(done.positionTokens);
      // llama.cpp evaluated the chunk and the output tokens, never the history again.
      expect(session.evaluatedTokens - evaluatedBefore).toBe(done.inputTokens + done.outputTokens);
      expect(session.contextTokens.slice(0, before)).toEqual(prefix);
    }
    // llama.cpp keeps one cell of the context free.
    expect(session.stats()).toMatchObject({ appends: 20, positionTokens: session.positionTokens, capacityTokens: 2047 });
    await session.close();
  });

  it("streams deltas whose positions are rewind points, and output is deterministic when greedy", async () => {
    const a = await engine.openSession();
    const b = await engine.openSession();
    const ra = await run(a, chunk(0, "what time is it"), { maxOutputTokens: 6 });
    const rb = await run(b, chunk(0, "what time is it"), { maxOutputTokens: 6 });
    expect(ra.text).toBe(rb.text);
    expect(ra.done.finishReason).toBe(rb.done.finishReason);
    let last = ra.done.inputEndTokens;
    for (const d of ra.deltas) {
      if (d.type !== "delta") continue;
      expect(d.positionTokens).toBeGreaterThan(last);
      last = d.positionTokens;
    }
    if (ra.done.outputTokens > 0) expect(last).toBe(ra.done.positionTokens);
    await a.close();
    await b.close();
  });

  it("ends at a stop string, emits the text before it, and keeps only emitted tokens in the sequence", async () => {
    // Random weights: find an input whose greedy output has some clean text to cut.
    let input = "";
    let free: Awaited<ReturnType<typeof run>> | undefined;
    for (const candidate of ["hello", "what time is it", "the weather today", "can you help", "yes please"]) {
      const probe = await engine.openSession();
      free = await run(probe, chunk(0, candidate), { maxOutputTokens: 8 });
      await probe.close();
      input = candidate;
      if (free.text.replaceAll("\uFFFD", "").length > 2) break;
    }
    const clean = free!.text.replaceAll("\uFFFD", "");
    expect(clean.length).toBeGreaterThan(2);
    const stop = clean.slice(Math.floor(clean.length / 2), Math.floor(clean.length / 2) + 1);
    const s = (await engine.openSession()) as EmbeddedSession;
    const { text, done } = await run(s, chunk(0, input), { maxOutputTokens: 8, stop: [stop] });
    expect(done.finishReason).toBe(FinishReason.FINISH_REASON_STOP);
    expect(text).not.toContain(stop);
    expect(free!.text.startsWith(text)).toBe(true);
    expect(s.positionTokens).toBe(done.inputEndTokens + done.outputTokens);
    expect(s.contextTokens.length).toBe(s.positionTokens);
    await s.close();
  });

  it("appends input only with a zero budget", async () => {
    const s = await engine.openSession();
    const { done, deltas } = await run(s, chunk(0), { maxOutputTokens: 0 });
    expect(deltas).toEqual([]);
    expect(done.outputTokens).toBe(0);
    expect(done.positionTokens).toBe(done.inputEndTokens);
    await s.close();
  });

  it("rewinds the tail and continues from there with the same result as never having appended", async () => {
    const s = (await engine.openSession()) as EmbeddedSession;
    const fresh = (await engine.openSession()) as EmbeddedSession;
    await run(s, chunk(0), { maxOutputTokens: 2 });
    await run(fresh, chunk(0), { maxOutputTokens: 2 });
    const mark = s.positionTokens;
    await run(s, chunk(1, "something the user never said"), { maxOutputTokens: 4 });
    expect(s.positionTokens).toBeGreaterThan(mark);
    const evaluated = s.evaluatedTokens;
    expect(await s.rewind(mark)).toBe(mark);
    expect(s.positionTokens).toBe(mark);
    expect(s.evaluatedTokens).toBe(evaluated); // erasing re-evaluates nothing
    const again = await run(s, chunk(1, "hello"), { maxOutputTokens: 4 });
    const reference = await run(fresh, chunk(1, "hello"), { maxOutputTokens: 4 });
    expect(again.text).toBe(reference.text);
    expect(s.contextTokens).toEqual(fresh.contextTokens);
    await s.close();
    await fresh.close();
  });

  it("keeps sessions independent", async () => {
    const sessions = await Promise.all([0, 1, 2].map(() => engine.openSession()));
    const results = await Promise.all(sessions.map((s, i) => run(s, chunk(0, `session ${"x".repeat(i * 5)}`), { maxOutputTokens: 2 })));
    for (const [i, s] of sessions.entries()) expect(s.positionTokens).toBe(results[i]!.done.positionTokens);
    expect(new Set(results.map((r) => r.done.inputTokens)).size).toBe(3);
    expect((await engine.health()).activeSessions).toBeGreaterThanOrEqual(3);
    await Promise.all(sessions.map((s) => s.close()));
  });

  it("refuses bad input with typed errors, and the engine and other sessions go on", async () => {
    const s = await engine.openSession({ capacityTokens: 256 });
    const other = await engine.openSession();
    await run(s, chunk(0), { maxOutputTokens: 1 });
    const at = s.positionTokens;
    await expectCode(Promise.resolve().then(() => engine.session("no-such-session")), "unknown_session");
    await expectCode(s.rewind(0), "rewind_out_of_range"); // below BOS
    await expectCode(s.rewind(at + 1), "rewind_out_of_range");
    await expectCode(s.rewind(1.5), "invalid_argument");
    await expectCode(run(s, { ...chunk(1), audio: { frames: 16, channels: 80, codes: new Uint8Array(1280) } }, { maxOutputTokens: 1 }), "unsupported_modality");
    await expectCode(run(s, chunk(1), { maxOutputTokens: -1 }), "invalid_argument");
    await expectCode(run(s, chunk(1, "word ".repeat(400)), { maxOutputTokens: 1 }), "too_large");
    // A second append while one is in flight.
    const first = s.append(chunk(1), { maxOutputTokens: 4 })[Symbol.asyncIterator]();
    const firstStep = first.next();
    await expectCode(run(s, chunk(2), { maxOutputTokens: 1 }), "busy");
    await expectCode(s.rewind(at), "busy");
    await firstStep;
    while (!(await first.next()).done);
    expect(s.positionTokens).toBeGreaterThan(at);
    await s.close();
    await expectCode(run(s, chunk(3), { maxOutputTokens: 1 }), "session_closed");
    await expectCode(s.rewind(1), "session_closed");
    await s.close(); // idempotent
    const { done } = await run(other, chunk(0), { maxOutputTokens: 2 });
    expect(done.positionTokens).toBe(other.positionTokens);
    await other.close();
  });

  /** Appends zero-output chunks while two more would fit; returns the next seq. */
  async function fill(s: EmbeddedSession): Promise<number> {
    for (let seq = 0; ; seq++) {
      const { done } = await run(s, chunk(seq, "hello world again "), { maxOutputTokens: 0 });
      if (s.positionTokens + 2 * done.inputTokens > s.capacityTokens) return seq + 1;
    }
  }

  /** The input tokens of `c`, measured by appending it and rewinding. */
  async function inputTokensOf(s: EmbeddedSession, c: EngineChunk): Promise<number> {
    const at = s.positionTokens;
    const { done } = await run(s, c, { maxOutputTokens: 0 });
    await s.rewind(at);
    return done.inputTokens;
  }

  it("leaves room for the conversation past a system prompt longer than the capacity asked for, and refuses one past the model", async () => {
    const long = "a rather long system prompt with many words in it ".repeat(40);
    const s = (await engine.openSession({ capacityTokens: 256, systemPrompt: long })) as EmbeddedSession;
    expect(s.capacityTokens - s.positionTokens).toBeGreaterThanOrEqual(64);
    const { done } = await run(s, chunk(0, "hi"), { maxOutputTokens: 2 });
    expect(done.positionTokens).toBeGreaterThan(done.inputEndTokens - done.inputTokens);
    await s.close();
    await expectCode(engine.openSession({ systemPrompt: long.repeat(Math.ceil((engine.capabilities.maxContextTokens * 4) / long.length)) }), "too_large");
  });

  it("fills the sequence exactly to its capacity without llama.cpp erasing its beginning (the system prompt)", async () => {
    const s = (await engine.openSession({ capacityTokens: 256, systemPrompt: "SYSTEM PROMPT IS HERE" })) as EmbeddedSession;
    expect(s.capacityTokens).toBe(255);
    const head = s.contextTokens.slice(0, s.positionTokens);
    const seq = await fill(s);
    // A chunk whose input and output budget fill the capacity exactly.
    const input = await inputTokensOf(s, chunk(seq, "x"));
    const budget = s.capacityTokens - s.positionTokens - input;
    const { done } = await run(s, chunk(seq, "x"), { maxOutputTokens: budget, temperature: 1 });
    expect(done.positionTokens).toBeLessThanOrEqual(255);
    expect(done.positionTokens).toBe(s.positionTokens);
    expect(s.contextTokens.slice(0, head.length)).toEqual(head);
    // One token more does not fit: refused before anything is evaluated.
    const before = s.positionTokens;
    await expectCode(run(s, chunk(seq + 1, "x"), { maxOutputTokens: s.capacityTokens - before }), "too_large");
    expect(s.positionTokens).toBe(before);
    await s.close();
  });

  it("refuses a forced tool call that might not fit, before evaluating anything, keeping the system prompt", async () => {
    const s = (await engine.openSession({ capacityTokens: 256, systemPrompt: "SYSTEM PROMPT IS HERE" })) as EmbeddedSession;
    const head = s.contextTokens.slice(0, s.positionTokens);
    const seq = await fill(s);
    const before = s.positionTokens;
    const forceTool = { name: "t", parametersJson: '{"type":"object","properties":{"a":{"type":"integer"}},"required":["a"]}' };
    await expectCode(run(s, chunk(seq, "x"), { maxOutputTokens: 0, forceTool }), "too_large");
    expect(s.positionTokens).toBe(before);
    expect(s.contextTokens.slice(0, head.length)).toEqual(head);
    await s.close();
  });

  it("writes a forced tool call whose arguments follow the tool's schema, beyond the output budget", async () => {
    const s = await engine.openSession({ capacityTokens: 2048 });
    await run(s, chunk(0), { maxOutputTokens: 1 });
    const schema = { type: "object", properties: { city: { type: "string", maxLength: 12 }, days: { type: "integer" } }, required: ["city", "days"] };
    const { text, done } = await run(s, chunk(1, "weather in Lisbon?"), { maxOutputTokens: 1, forceTool: { name: "get_weather", parametersJson: JSON.stringify(schema) } });
    const match = /^<tool_call>([\s\S]*)<\/tool_call>$/.exec(text);
    expect(match, text).not.toBeNull();
    const call = JSON.parse(match![1]!) as { name: string; arguments: { city: unknown; days: unknown } };
    expect(call.name).toBe("get_weather");
    expect(typeof call.arguments.city).toBe("string");
    expect([...(call.arguments.city as string)].length).toBeLessThanOrEqual(12); // characters, as the grammar counts them
    expect(Number.isInteger(call.arguments.days)).toBe(true);
    expect(done.finishReason).toBe(FinishReason.FINISH_REASON_STOP);
    expect(done.outputTokens).toBeGreaterThan(1);
    // The call is in the sequence like any output: positions agree and it can be rewound away.
    expect(s.positionTokens).toBe(done.positionTokens);
    expect(done.positionTokens).toBe(done.inputEndTokens + done.outputTokens);
    expect(await s.rewind(done.inputEndTokens)).toBe(done.inputEndTokens);
    await s.close();
  });

  it("refuses a forced tool call with a schema that is not one, keeping the session usable", async () => {
    const s = await engine.openSession();
    await expectCode(run(s, chunk(0), { maxOutputTokens: 1, forceTool: { name: "broken", parametersJson: "[1, 2" } }), "invalid_argument");
    const at = s.positionTokens;
    const { done } = await run(s, chunk(1), { maxOutputTokens: 2 });
    expect(done.positionTokens).toBe(s.positionTokens);
    expect(done.inputEndTokens).toBeGreaterThan(at);
    await s.close();
  });

  it("finishes with ABORT when the signal fires mid-turn, keeping only emitted output", async () => {
    const s = await engine.openSession();
    const controller = new AbortController();
    let done: AppendResult | undefined;
    let emitted = 0;
    for await (const out of s.append(chunk(0), { maxOutputTokens: 50, signal: controller.signal })) {
      if (out.type === "delta") {
        emitted = out.positionTokens;
        controller.abort();
      } else done = out.done;
    }
    expect(done).toBeDefined();
    if (emitted > 0) {
      expect(done!.finishReason).toBe(FinishReason.FINISH_REASON_ABORT);
      expect(s.positionTokens).toBe(emitted);
    }
    const aborted = new AbortController();
    aborted.abort();
    await expectCode(run(s, chunk(1), { maxOutputTokens: 1, signal: aborted.signal }), "aborted");
    await s.close();
  });

  it("refuses a missing file, a non-GGUF file, and an empty path with invalid_model", async () => {
    await expectCode(createEmbeddedEngine({ modelPath: join(dir, "missing.gguf") }), "invalid_model");
    const notGguf = join(dir, "not-a-model.gguf");
    writeFileSync(notGguf, "this is not a model");
    await expectCode(createEmbeddedEngine({ modelPath: notGguf }), "invalid_model");
    await expectCode(createEmbeddedEngine({ modelPath: "" }), "invalid_model");
    expect((await engine.health()).serving).toBe(true);
  });
});

describe("embedded engine silence", () => {
  it("reports SILENT when the model ends its turn at once, and keeps no output token", async () => {
    const dir = mkdtempSync(join(tmpdir(), "microturn-silent-"));
    const engine = await createEmbeddedEngine({ modelPath: ensureTinyModel({ dir, size: { eosBias: 50 } }) });
    try {
      const s = await engine.openSession();
      for (let seq = 0; seq < 3; seq++) {
        const { done, deltas } = await run(s, chunk(seq), { maxOutputTokens: 4 });
        expect(done.finishReason).toBe(FinishReason.FINISH_REASON_SILENT);
        expect(deltas).toEqual([]);
        expect(done.positionTokens).toBe(done.inputEndTokens);
      }
    } finally {
      await engine.dispose();
    }
  });
});
