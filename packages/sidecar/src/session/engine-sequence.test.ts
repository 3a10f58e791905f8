import { describe, expect, it } from "vitest";
import { createEchoEngine } from "../engines/echo/index.js";
import type { EngineChunk, EngineSession } from "../engines/engine.js";
import { EngineError } from "../engines/errors.js";
import { EngineSequence, TurnFailed, type RolloverSample } from "./engine-sequence.js";

const chunk = (seq: number, words: number): EngineChunk => ({ seq, startMs: seq * 200, durationMs: 200, text: Array.from({ length: words }, (_, i) => `w${i}`).join(" ") });
const same = (text: string) => text;

async function sequenceOn(capacity: number, withReopen = true) {
  const engine = await createEchoEngine({ defaultCapacityTokens: capacity });
  const samples: RolloverSample[] = [];
  const sequence = new EngineSequence({
    session: await engine.openSession({ systemPrompt: "be brief" }),
    systemPrompt: "be brief",
    ...(withReopen ? { reopen: (systemPrompt: string) => engine.openSession({ systemPrompt }) } : {}),
    onRollover: (sample) => samples.push(sample),
  });
  return { engine, sequence, samples };
}

describe("EngineSequence", () => {
  it("rolls over before a turn that might not fit, carrying what it is given", async () => {
    const { engine, sequence, samples } = await sequenceOn(100);
    for (let seq = 0; seq < 30; seq++) await sequence.turn(chunk(seq, 3), { maxOutputTokens: 2 }, () => [{ role: "user", text: "earlier", startMs: 0 }], same);
    expect(sequence.rollovers).toBeGreaterThanOrEqual(2);
    expect(samples).toHaveLength(sequence.rollovers);
    expect(samples[0]!.fromTokens).toBeGreaterThan(samples[0]!.toTokens);
    expect(samples[0]!.carriedLines).toBe(1);
    expect(sequence.positionTokens).toBeLessThanOrEqual(100);
    expect((await engine.health()).activeSessions).toBe(1);
  });

  it("goes on in the current sequence when the early rollover cannot open a session, while the turn still fits", async () => {
    const engine = await createEchoEngine({ defaultCapacityTokens: 100, maxSessions: 1 });
    const sequence = new EngineSequence({
      session: await engine.openSession({ systemPrompt: "be brief" }),
      systemPrompt: "be brief",
      reopen: (systemPrompt: string) => engine.openSession({ systemPrompt }),
      onRollover: () => undefined,
    });
    const outputs: string[] = [];
    // Turns run until the sequence is truly full: the early rollovers fail (no engine session to spare) and change nothing.
    let full: unknown;
    for (let seq = 0; seq < 60 && full === undefined; seq++) {
      try {
        outputs.push((await sequence.turn(chunk(seq, 3), { maxOutputTokens: 2 }, () => [], same)).text);
      } catch (err) {
        full = err;
      }
    }
    expect(sequence.rollovers).toBe(0);
    expect(sequence.positionTokens).toBeGreaterThan(90);
    expect(outputs.length).toBeGreaterThan(15);
    expect(EngineError.isInstance(full) && full.code).toBe("unavailable");
  });

  it("rolls over once and retries when a chunk much larger than the earlier ones does not fit", async () => {
    const { sequence } = await sequenceOn(100);
    // Two tokens a turn (the echo engine's marker and word are one piece, plus one output).
    for (let seq = 0; seq < 20; seq++) await sequence.turn(chunk(seq, 1), { maxOutputTokens: 1 }, () => [], same);
    expect(sequence.rollovers).toBe(0);
    const before = sequence.positionTokens;
    // Past what is left of this sequence, well within a fresh one; the estimate (3 tokens a turn) does not see it coming.
    const turn = await sequence.turn(chunk(20, 100 - before + 2), { maxOutputTokens: 1 }, () => [], same);
    expect(sequence.rollovers).toBe(1);
    expect(turn.result.inputEnd).toBeGreaterThan(turn.result.inputStart);
  });

  it("rewinds the current session and re-appends the given chunks as input only, where a fresh run would put them", async () => {
    const { sequence } = await sequenceOn(1000);
    const turns = [];
    for (let seq = 0; seq < 3; seq++) turns.push(await sequence.turn(chunk(seq, 2), { maxOutputTokens: 2 }, () => [], same));
    const positions = await sequence.rewind(turns[1]!.result.inputStart, [chunk(1, 2), chunk(2, 2)]);
    expect(positions[0]).toEqual({ inputStartTokens: turns[1]!.result.inputStart, inputEndTokens: turns[1]!.result.inputEnd });
    expect(positions[1]!.inputStartTokens).toBe(positions[0]!.inputEndTokens);
    // No output this time: the second chunk's input ends earlier than it did after the first turn's output.
    expect(sequence.positionTokens).toBe(positions[1]!.inputEndTokens);
    expect(sequence.positionTokens).toBeLessThan(turns[2]!.result.outputEnd);
  });

  it("answers TOO_LARGE when the chunk fits no sequence, or when there is no reopen", async () => {
    const { sequence } = await sequenceOn(100);
    for (let seq = 0; seq < 20; seq++) await sequence.turn(chunk(seq, 1), { maxOutputTokens: 1 }, () => [], same);
    const err = await sequence.turn(chunk(20, 150), { maxOutputTokens: 1 }, () => [], same).catch((e: unknown) => e);
    expect(EngineError.isInstance(err) && err.code).toBe("too_large");
    expect(sequence.rollovers).toBe(1); // tried once in a fresh sequence, which was no better
    const fixed = await sequenceOn(60, false);
    const fails = async () => {
      for (let seq = 0; seq < 40; seq++) await fixed.sequence.turn(chunk(seq, 3), { maxOutputTokens: 2 }, () => [], same);
    };
    await expect(fails()).rejects.toMatchObject({ code: "too_large" });
    expect(fixed.sequence.rollovers).toBe(0);
  });
});

describe("EngineSequence and transient engine failures", () => {
  /** An engine session whose next `failures` appends fail with `code`, after `deltasFirst` deltas. */
  function flaky(session: EngineSession, failures: number, code: "busy" | "unavailable" | "internal", deltasFirst = 0): EngineSession & { attempts: number } {
    let left = failures;
    const wrapped = Object.create(session) as EngineSession & { attempts: number };
    wrapped.attempts = 0;
    wrapped.append = async function* (c, options) {
      wrapped.attempts++;
      if (left > 0) {
        left--;
        for (let i = 0; i < deltasFirst; i++) yield { type: "delta", text: "partial ", positionTokens: session.positionTokens };
        throw new EngineError(code, `${code} for a moment`);
      }
      yield* session.append(c, options);
    };
    return wrapped;
  }

  async function on(failures: number, code: "busy" | "unavailable" | "internal", deltasFirst = 0) {
    const engine = await createEchoEngine({ defaultCapacityTokens: 1000 });
    const session = flaky(await engine.openSession({ systemPrompt: "be brief" }), failures, code, deltasFirst);
    const sequence = new EngineSequence({ session, systemPrompt: "be brief", onRollover: () => undefined });
    return { session, sequence };
  }

  it.each(["busy", "unavailable"] as const)("retries a turn that failed %s before any output: the acked input is not lost", async (code) => {
    const { session, sequence } = await on(2, code);
    const { text } = await sequence.turn(chunk(0, 2), { maxOutputTokens: 8 }, () => [], same);
    expect(text).toBe("w0 w1");
    expect(session.attempts).toBe(3);
  });

  /**
   * An echo session whose first append takes the input and then fails with a
   * dropped connection before any output arrives, and whose first
   * `rewindRefusals` rewinds are refused as busy.
   */
  async function droppingAfterInput(rewindRefusals = 0) {
    const engine = await createEchoEngine({ defaultCapacityTokens: 1000 });
    const session = await engine.openSession({ systemPrompt: "be brief" });
    let failures = 1;
    const wrapped = Object.create(session) as EngineSession;
    wrapped.append = async function* (c, options) {
      if (failures-- > 0) {
        const inner = session.append(c, options)[Symbol.asyncIterator]();
        await inner.next();
        await inner.return?.(undefined);
        throw new EngineError("unavailable", "connection reset");
      }
      yield* session.append(c, options);
    };
    wrapped.rewind = async (position) => {
      if (rewindRefusals-- > 0) throw new EngineError("busy", "the failed turn is still being torn down");
      return session.rewind(position);
    };
    const sequence = new EngineSequence({ session: wrapped, systemPrompt: "be brief", onRollover: () => undefined });
    return { sequence, sequenceText: () => (session as unknown as { text: string }).text };
  }

  it("puts the sequence back before a retry when the engine took the input before failing, so the input goes in once", async () => {
    const { sequence, sequenceText } = await droppingAfterInput();
    const { text } = await sequence.turn(chunk(0, 2), { maxOutputTokens: 8 }, () => [], same);
    expect(text).toBe("w0 w1");
    expect(sequenceText()).toBe("be brief<t=0.0s>w0 w1w0 w1");
  });

  it("waits before the rewind, and takes a rewind refused for a passing reason as one more failed attempt", async () => {
    const { sequence, sequenceText } = await droppingAfterInput(1);
    const { text } = await sequence.turn(chunk(0, 2), { maxOutputTokens: 8 }, () => [], same);
    expect(text).toBe("w0 w1");
    expect(sequenceText()).toBe("be brief<t=0.0s>w0 w1w0 w1");
  });

  it("rolls over when a retry finds the sequence full", async () => {
    const { sequence, samples } = await sequenceOn(60);
    // Nearly full: the next chunk does not fit; the first attempt fails transiently, the retry says too_large.
    const current = (sequence as unknown as { current: EngineSession }).current;
    let failures = 1;
    const realAppend = current.append.bind(current);
    current.append = async function* (c, options) {
      if (failures-- > 0) throw new EngineError("busy", "a moment");
      yield* realAppend(c, options);
    };
    for (let seq = 0; seq < 3; seq++) await sequence.turn(chunk(seq, 3), { maxOutputTokens: 2 }, () => [], same);
    failures = 1;
    const big = await sequence.turn(chunk(3, 50), { maxOutputTokens: 2 }, () => [{ role: "user", text: "earlier", startMs: 0 }], same);
    expect(big.text).toBe("w0 w1");
    expect(samples.length).toBeGreaterThanOrEqual(1);
  });

  it("gives up after two retries with the engine's error", async () => {
    const { session, sequence } = await on(3, "unavailable");
    await expect(sequence.turn(chunk(0, 2), { maxOutputTokens: 8 }, () => [], same)).rejects.toMatchObject({ code: "unavailable" });
    expect(session.attempts).toBe(3);
  });

  it("does not retry an error that is not transient, or one after output began, or an aborted turn", async () => {
    const internal = await on(1, "internal");
    await expect(internal.sequence.turn(chunk(0, 2), { maxOutputTokens: 8 }, () => [], same)).rejects.toMatchObject({ code: "internal" });
    expect(internal.session.attempts).toBe(1);
    const partial = await on(1, "busy", 1);
    const heard: string[] = [];
    const failed = await partial.sequence.turn(chunk(0, 2), { maxOutputTokens: 8 }, () => [], (t) => (heard.push(t), t)).catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(TurnFailed);
    expect((failed as TurnFailed).cause).toMatchObject({ code: "busy" });
    // Not retried (and not taken back: this sequence was not told its engine can rewind).
    expect(partial.session.attempts).toBe(1);
    expect((failed as TurnFailed).recovered).toBeUndefined();
    expect(heard).toEqual(["partial "]);
    const aborted = await on(1, "busy");
    const controller = new AbortController();
    controller.abort();
    await expect(aborted.sequence.turn(chunk(0, 2), { maxOutputTokens: 8, signal: controller.signal }, () => [], same)).rejects.toMatchObject({ code: "busy" });
    expect(aborted.session.attempts).toBe(1);
  });
});

describe("EngineSequence and a turn that fails mid-answer", () => {
  /** An echo session whose next append takes the input, says `words` words of its answer and then fails. */
  async function failingMidAnswer(words: number, opts: { rewind?: "gone" | "busy-twice"; supportsRewind?: boolean } = {}) {
    const engine = await createEchoEngine({ defaultCapacityTokens: 1000 });
    const session = await engine.openSession({ systemPrompt: "be brief" });
    let failNext = false;
    const wrapped = Object.create(session) as EngineSession & { rewinds: number };
    wrapped.rewinds = 0;
    wrapped.append = async function* (c, options) {
      let said = 0;
      const failing = failNext;
      failNext = false;
      for await (const out of session.append(c, options)) {
        if (failing && out.type === "delta" && said++ === words) throw new EngineError("internal", "the engine fell over mid-answer");
        yield out;
      }
    };
    wrapped.rewind = async (position, signal) => {
      wrapped.rewinds++;
      if (opts.rewind === "gone") throw new EngineError("unavailable", "the engine went away");
      if (opts.rewind === "busy-twice" && wrapped.rewinds <= 2) throw new EngineError("busy", "still winding the request down");
      return session.rewind(position, signal);
    };
    const sequence = new EngineSequence({ session: wrapped, systemPrompt: "be brief", onRollover: () => undefined, supportsRewind: opts.supportsRewind ?? true });
    return { sequence, session: wrapped, failNext: () => (failNext = true) };
  }

  it("takes the unfinished answer back out: the model keeps the input, not the answer nobody got", async () => {
    const { sequence, failNext } = await failingMidAnswer(2);
    const first = await sequence.turn(chunk(0, 2), { maxOutputTokens: 8 }, () => [], same);
    const before = sequence.positionTokens;
    failNext();
    const failed = await sequence.turn(chunk(1, 4), { maxOutputTokens: 8 }, () => [], same).catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(TurnFailed);
    expect((failed as TurnFailed).cause).toMatchObject({ code: "internal" });
    // Where a silent turn with the same input would have left it: the input's tokens and nothing after
    // (the echo engine's tokens are words: chunk 1's input is chunk 0's and two words more).
    const inputTokens = first.result.inputEnd - first.result.inputStart + 2;
    expect((failed as TurnFailed).recovered).toEqual({ inputStart: before, inputEnd: before + inputTokens });
    expect(sequence.positionTokens).toBe(before + inputTokens);
    // And the sequence goes on from there.
    const next = await sequence.turn(chunk(2, 1), { maxOutputTokens: 8 }, () => [], same);
    expect(next.result.inputStart).toBe(before + inputTokens);
  });

  it("waits out a rewind refused for a moment (the engine still winding the request down)", async () => {
    const { sequence, session, failNext } = await failingMidAnswer(1, { rewind: "busy-twice" });
    const before = sequence.positionTokens;
    failNext();
    const failed = (await sequence.turn(chunk(0, 3), { maxOutputTokens: 8 }, () => [], same).catch((e: unknown) => e)) as TurnFailed;
    expect(session.rewinds).toBe(3);
    expect(failed.recovered).toMatchObject({ inputStart: before });
  });

  it("leaves the failure as it is when the engine cannot take the answer back: gone, or append-only", async () => {
    for (const opts of [{ rewind: "gone" as const }, { supportsRewind: false }]) {
      const { sequence, session, failNext } = await failingMidAnswer(1, opts);
      failNext();
      const failed = await sequence.turn(chunk(0, 3), { maxOutputTokens: 8 }, () => [], same).catch((e: unknown) => e);
      expect(failed).toBeInstanceOf(TurnFailed);
      expect((failed as TurnFailed).recovered).toBeUndefined();
      expect((failed as TurnFailed).cause).toMatchObject({ code: "internal" });
      // An append-only engine is not even asked (its "rewind" to where it is would let the input in twice);
      // one that went away is asked three times (unavailable may pass), then the failure stands.
      expect(session.rewinds).toBe(opts.supportsRewind === false ? 0 : 3);
    }
  });

  it("puts speech held for held-back text back as it was before the failed turn", async () => {
    const engine = await createEchoEngine({ defaultCapacityTokens: 1000 });
    const session = await engine.openSession({});
    // Turn 0 ends on a held "<" (audio 2 waits); turn 1 releases it with "b" (audio 3), then fails mid-answer;
    // turn 2 releases the "<" again with "c" (audio 4).
    const script: { text: string; audio: number }[][] = [[{ text: "a", audio: 1 }, { text: "<", audio: 2 }], [{ text: "b", audio: 3 }], [{ text: "c", audio: 4 }]];
    let call = 0;
    const wrapped = Object.create(session) as EngineSession;
    wrapped.rewind = async (position) => position;
    wrapped.append = async function* (_c, options) {
      const done = { type: "done" as const, done: { finishReason: 2, positionTokens: 0, inputEndTokens: 0, inputTokens: 0, outputTokens: 0, appendMs: 0, turnMs: 0 } };
      if (options.maxOutputTokens === 0) return yield done; // the input alone, after the take-back
      const turn = call++;
      for (const p of script[turn]!) yield { type: "delta", text: p.text, positionTokens: 0, audioPcm16: new Uint8Array([p.audio]), audioSampleRateHz: 16000 };
      if (turn === 1) throw new EngineError("internal", "fell over mid-answer");
      yield done;
    };
    const sequence = new EngineSequence({ session: wrapped, systemPrompt: "", onRollover: () => undefined, supportsRewind: true });
    const first = await sequence.turn(chunk(0, 1), { maxOutputTokens: 8 }, () => [], (t) => (t === "<" ? "" : t));
    expect([...first.audio!.pcm16]).toEqual([1]);
    const failed = (await sequence.turn(chunk(1, 1), { maxOutputTokens: 8 }, () => [], (t) => `<${t}`).catch((e: unknown) => e)) as TurnFailed;
    expect(failed.recovered).toBeDefined();
    // The answer that let the "<" go is gone, so its audio is held again and goes out with the next release.
    const third = await sequence.turn(chunk(2, 1), { maxOutputTokens: 8 }, () => [], (t) => `<${t}`);
    expect([...third.audio!.pcm16]).toEqual([2, 4]);
  });
});

describe("EngineSequence and speech", () => {
  it("keeps the audio of text the tool-call parser held back once the text is released, and drops the audio of markup", async () => {
    const engine = await createEchoEngine({ defaultCapacityTokens: 1000 });
    const session = await engine.openSession({});
    // Then speech after the call in the same turn, and the vocoder's tail with no text (as the reference engine sends it).
    const pieces = ["a", "<", "b", "<tool_call>", "{}", "</tool_call>", "c", ""];
    const wrapped = Object.create(session) as EngineSession;
    wrapped.append = async function* () {
      for (const [i, text] of pieces.entries()) yield { type: "delta", text, positionTokens: i + 1, audioPcm16: new Uint8Array([i, i]), audioSampleRateHz: 16000 };
      yield { type: "done", done: { finishReason: 2, positionTokens: pieces.length, inputEndTokens: 0, inputTokens: 0, outputTokens: pieces.length, appendMs: 0, turnMs: 0 } };
    };
    const sequence = new EngineSequence({ session: wrapped, systemPrompt: "", onRollover: () => undefined });
    // A parser in miniature: "<" is held until the next piece shows it opens no call; call markup is never shown.
    let holding = "";
    let inCall = false;
    const visible = (text: string): string => {
      if (inCall || text.startsWith("<tool_call>")) {
        inCall = !text.endsWith("</tool_call>");
        return "";
      }
      if (text === "<") return ((holding = text), "");
      const shown = holding + text;
      holding = "";
      return shown;
    };
    const { text, audio } = await sequence.turn(chunk(0, 1), { maxOutputTokens: 8 }, () => [], visible);
    expect(text).toBe("a<bc");
    // The markup's audio (3, 4, 5) is never spoken: "c" came out with nothing released, so it was a call's. The
    // vocoder's tail after "c" is.
    expect([...audio!.pcm16]).toEqual([0, 0, 1, 1, 2, 2, 6, 6, 7, 7]);
    expect(audio!.sampleRateHz).toBe(16000);
  });

  it("keeps held audio across micro-turns: text the parser lets go of in a later turn is spoken then", async () => {
    const engine = await createEchoEngine({ defaultCapacityTokens: 1000 });
    const session = await engine.openSession({});
    const turns: { text: string; audio?: number }[][] = [
      [{ text: "a", audio: 1 }, { text: "<", audio: 2 }],
      [{ text: "b" }],
      [{ text: "<", audio: 3 }],
      [{ text: "<tool_call>{}</tool_call>", audio: 4 }, { text: "d", audio: 5 }],
    ];
    let turn = 0;
    const wrapped = Object.create(session) as EngineSession;
    wrapped.append = async function* () {
      const pieces = turns[turn++]!;
      for (const [i, p] of pieces.entries()) {
        yield { type: "delta", text: p.text, positionTokens: i + 1, ...(p.audio ? { audioPcm16: new Uint8Array([p.audio]), audioSampleRateHz: 24000 } : {}) };
      }
      yield { type: "done", done: { finishReason: 2, positionTokens: pieces.length, inputEndTokens: 0, inputTokens: 0, outputTokens: pieces.length, appendMs: 0, turnMs: 0 } };
    };
    const sequence = new EngineSequence({ session: wrapped, systemPrompt: "", onRollover: () => undefined });
    let holding = "";
    const visible = (text: string): string => {
      if (text.startsWith("<tool_call>")) return ((holding = ""), "");
      if (text === "<") return ((holding = text), "");
      const shown = holding + text;
      holding = "";
      return shown;
    };
    const first = await sequence.turn(chunk(0, 1), { maxOutputTokens: 8 }, () => [], visible);
    expect(first.text).toBe("a");
    expect([...first.audio!.pcm16]).toEqual([1]);
    // The next turn speaks nothing itself, but lets go of the "<": its audio goes out now, at the rate it came with.
    const second = await sequence.turn(chunk(1, 1), { maxOutputTokens: 8 }, () => [], visible);
    expect(second.text).toBe("<b");
    expect([...second.audio!.pcm16]).toEqual([2]);
    expect(second.audio!.sampleRateHz).toBe(24000);
    // A "<" that turns out to open a call: its audio (3) and the call's (4) are never spoken.
    const third = await sequence.turn(chunk(2, 1), { maxOutputTokens: 8 }, () => [], visible);
    expect(third.audio).toBeUndefined();
    const fourth = await sequence.turn(chunk(3, 1), { maxOutputTokens: 8 }, () => [], visible);
    expect(fourth.text).toBe("d");
    expect([...fourth.audio!.pcm16]).toEqual([5]);
  });
});
