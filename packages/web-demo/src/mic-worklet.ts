// AudioWorklet processor: collects the microphone's first channel and posts
// it to the page in 200 ms Float32 pieces (the SDK's chunk length), so the
// main thread handles 5 messages a second instead of one per 128-frame quantum.

// The worklet global scope is not in TypeScript's DOM lib; these are the parts used here.
declare const sampleRate: number;
declare function registerProcessor(name: string, ctor: new (options?: unknown) => AudioWorkletProcessorLike): void;
declare class AudioWorkletProcessorLike {
  constructor(options?: unknown);
  readonly port: MessagePort;
}
declare const AudioWorkletProcessor: typeof AudioWorkletProcessorLike;

// The name audio-io.ts asks for.
const MIC_PROCESSOR = "microturn-mic";
const PIECE_MS = 200;

class MicProcessor extends AudioWorkletProcessor {
  private readonly pieceLength = Math.max(128, Math.round((sampleRate * PIECE_MS) / 1000));
  private piece = new Float32Array(this.pieceLength);
  private filled = 0;
  /** Set by the page's "stop": process() then returns false and the browser may drop the processor. */
  private stopped = false;

  constructor(options?: unknown) {
    super(options);
    this.port.onmessage = (event: MessageEvent) => {
      if (event.data === "stop") this.stopped = true;
    };
  }

  process(inputs: Float32Array[][]): boolean {
    if (this.stopped) return false;
    const channel = inputs[0]?.[0];
    if (!channel) return true; // no input connected yet
    let offset = 0;
    while (offset < channel.length) {
      const take = Math.min(channel.length - offset, this.piece.length - this.filled);
      this.piece.set(channel.subarray(offset, offset + take), this.filled);
      this.filled += take;
      offset += take;
      if (this.filled === this.piece.length) {
        // Transferred, not copied: the buffer (and its length) is gone from here afterwards.
        this.port.postMessage(this.piece, [this.piece.buffer]);
        this.piece = new Float32Array(this.pieceLength);
        this.filled = 0;
      }
    }
    return true;
  }
}

registerProcessor(MIC_PROCESSOR, MicProcessor);
