import { describe, expect, it } from "vitest";
import { InputFramer } from "./input-framer.js";

describe("InputFramer", () => {
  it("numbers chunks contiguously and carries audio over", () => {
    const framer = new InputFramer({ chunkDurationMs: 200 });
    framer.addText("a");
    framer.addAudio(new Int16Array(5000));
    framer.addFrame({ widthPx: 1, heightPx: 1, rgb: Buffer.alloc(3), offsetMs: 999 });
    const c0 = framer.cut();
    const c1 = framer.cut();
    const c2 = framer.cut();
    expect([c0.seq, c1.seq, c2.seq]).toEqual([0, 1, 2]);
    expect([c0.startMs, c1.startMs, c2.startMs]).toEqual([0, 200, 400]);
    expect([c0.pcm?.pcm16.length, c1.pcm?.pcm16.length, c2.pcm]).toEqual([6400, 3600, undefined]);
    expect(c0.frames[0]?.offsetMs).toBe(199);
    expect([c0.text, c1.text]).toEqual(["a", ""]);
  });

  it("bounds the audio waiting to be framed", () => {
    const framer = new InputFramer({ maxPendingAudioMs: 400 });
    framer.addAudio(new Int16Array(6400));
    expect(() => framer.addAudio(new Int16Array(1))).toThrow(/400 ms of audio/);
  });
});
