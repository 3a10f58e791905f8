import { describe, expect, it } from "vitest";
import { InputChunk, MAX_MESSAGE_BYTES } from "@microturn/protocol";
import { InputFramer, wireBytes } from "./input-framer.js";

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

describe("InputFramer's size bound", () => {
  it("keeps a full chunk's encoding under MAX_MESSAGE_BYTES at every chunk length, many small frames included", () => {
    for (const chunkDurationMs of [200, 2000, 10_000]) {
      const framer = new InputFramer({ chunkDurationMs });
      framer.addAudio(new Int16Array(framer.samplesPerChunk).fill(1000));
      // Small frames up to the bound, then text to fill what is left.
      const small = { widthPx: 4, heightPx: 4, rgb: wireBytes(new Uint8Array(48)), offsetMs: 0 };
      for (let i = 0; i < 1000; i++) framer.addFrame(small);
      const big = { widthPx: 1920, heightPx: 1080, rgb: wireBytes(new Uint8Array(1920 * 1080 * 3)), offsetMs: 0 };
      framer.addFrame(big);
      framer.addFrame(big);
      expect(() => framer.addFrame(big), `${chunkDurationMs} ms`).toThrow(/over the/);
      // Three bytes each in UTF-8, the most a UTF-16 unit takes.
      let text = "€".repeat(64 * 1024);
      for (;;) {
        try {
          framer.addText(text);
        } catch {
          if (text.length === 1) break;
          text = text.slice(0, Math.ceil(text.length / 2));
        }
      }
      const chunk = framer.cut();
      expect(InputChunk.encode(chunk).finish().length + 16, `${chunkDurationMs} ms`).toBeLessThanOrEqual(MAX_MESSAGE_BYTES);
    }
  });
});
