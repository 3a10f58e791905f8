import { computeDmel, DMEL_CHANNELS, float32ToPcm16Bytes, pcm16BytesToFloat32 } from "@microturn/media";
import { describe, expect, it } from "vitest";
import { SessionInputMedia } from "./input-media.js";

describe("SessionInputMedia", () => {
  it("gives chunk-by-chunk dMel codes equal to the whole-signal codes", () => {
    const samples = new Float32Array(16000);
    for (let i = 0; i < samples.length; i++) samples[i] = 0.3 * Math.sin((2 * Math.PI * (200 + i / 20) * i) / 16000);
    const media = new SessionInputMedia();
    const parts: Uint8Array[] = [];
    for (let start = 0; start < samples.length; start += 3200) {
      const bytes = float32ToPcm16Bytes(samples.subarray(start, start + 3200));
      const dmel = media.audio({ sampleRateHz: 16000, channels: 1, pcm16: bytes });
      expect(dmel.frames).toBe(16);
      expect(dmel.channels).toBe(DMEL_CHANNELS);
      parts.push(dmel.codes);
    }
    const streamed = Uint8Array.from(parts.flatMap((p) => [...p]));
    // The whole signal after the same PCM16 rounding the wire applies.
    const whole = computeDmel(pcm16BytesToFloat32(float32ToPcm16Bytes(samples)), 16000);
    expect(streamed).toEqual(whole.codes.subarray(0, streamed.length));
  });

  it("cuts raw frames into 40x40 patches", () => {
    const media = new SessionInputMedia();
    const [patches] = media.video([{ widthPx: 100, heightPx: 50, rgb: new Uint8Array(100 * 50 * 3).fill(7), offsetMs: 40 }]);
    expect(patches).toMatchObject({ patchSizePx: 40, rows: 2, cols: 3, offsetMs: 40 });
    expect(patches!.rgb.length).toBe(2 * 3 * 40 * 40 * 3);
  });
});
