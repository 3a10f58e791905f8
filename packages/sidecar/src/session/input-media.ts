// Client media to engine input, per session: PCM at any rate becomes dMel codes
// through one streaming encoder (so codes match the whole-signal encoding across
// chunk boundaries), raw frames become 40x40 patches. All of it is @microturn/media.
import { DMEL_CHANNELS, DmelEncoder, pcm16BytesToFloat32, patchify } from "@microturn/media";
import type { InputChunk, VideoPatches } from "@microturn/protocol";
import type { InputMedia } from "./engine-input.js";

export class SessionInputMedia implements InputMedia {
  private encoder: DmelEncoder | undefined;

  audio(pcm: NonNullable<InputChunk["pcm"]>) {
    // A new rate mid-session starts a new stream; the overlap cannot carry across rates.
    if (!this.encoder || this.encoder.sampleRate !== pcm.sampleRateHz) this.encoder = new DmelEncoder({ sampleRate: pcm.sampleRateHz });
    const codes = this.encoder.push(pcm16BytesToFloat32(pcm.pcm16));
    return { frames: codes.length / DMEL_CHANNELS, channels: DMEL_CHANNELS, codes };
  }

  video(frames: InputChunk["frames"]): VideoPatches[] {
    return frames.map((frame) => {
      const grid = patchify(frame.rgb, frame.widthPx, frame.heightPx);
      return { patchSizePx: grid.patchSize, rows: grid.rows, cols: grid.cols, rgb: grid.patches, offsetMs: frame.offsetMs };
    });
  }
}
