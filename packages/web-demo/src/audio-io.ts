// The page's audio: microphone capture through the AudioWorklet, and
// gap-free playback of the model's output audio on the same AudioContext.
export interface Microphone {
  readonly sampleRateHz: number;
  stop(): void;
}

const MIC_PROCESSOR = "microturn-mic";

/** Starts capturing; `onPiece` gets ~200 ms of mono Float32 samples at `sampleRateHz`. */
export async function startMicrophone(context: AudioContext, workletUrl: URL, onPiece: (samples: Float32Array) => void): Promise<Microphone> {
  // Browsers give the microphone to secure pages only (https, or localhost); elsewhere mediaDevices is missing.
  if (!navigator.mediaDevices?.getUserMedia) {
    throw new Error(`the browser offers no microphone to this page (${location.origin}): open it over https or from localhost`);
  }
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
  });
  const stopTracks = () => {
    for (const track of stream.getTracks()) track.stop();
  };
  let source: MediaStreamAudioSourceNode;
  let capture: AudioWorkletNode;
  try {
    await context.audioWorklet.addModule(workletUrl.href);
    source = context.createMediaStreamSource(stream);
    capture = new AudioWorkletNode(context, MIC_PROCESSOR, { numberOfInputs: 1, numberOfOutputs: 1, channelCount: 1, channelCountMode: "explicit" });
  } catch (err) {
    // The microphone was granted: it must not stay live when capture cannot start.
    stopTracks();
    throw err;
  }
  capture.port.onmessage = (event: MessageEvent<Float32Array>) => onPiece(event.data);
  // The node only runs while the graph pulls it; a muted path to the speakers does that without echo.
  const mute = context.createGain();
  mute.gain.value = 0;
  source.connect(capture).connect(mute).connect(context.destination);
  return {
    sampleRateHz: context.sampleRate,
    stop() {
      capture.port.onmessage = null;
      // The processor ends itself on this message (its process() returns false): one left running per stop otherwise.
      capture.port.postMessage("stop");
      source.disconnect();
      capture.disconnect();
      mute.disconnect();
      stopTracks();
    },
  };
}

/** Queues PCM16 pieces back to back; reports how far playback has got, in output ms. */
export class OutputPlayer {
  private nextAt = 0;

  constructor(
    private readonly context: AudioContext,
    private readonly onPlayed: (playedUpToMs: number) => void,
  ) {}

  play(samples: Int16Array, sampleRateHz: number, startMs: number): void {
    if (samples.length === 0) return;
    const buffer = this.context.createBuffer(1, samples.length, sampleRateHz);
    const channel = buffer.getChannelData(0);
    for (let i = 0; i < samples.length; i++) channel[i] = samples[i]! / 32768;
    const node = this.context.createBufferSource();
    node.buffer = buffer;
    node.connect(this.context.destination);
    const at = Math.max(this.nextAt, this.context.currentTime + 0.05);
    node.start(at);
    this.nextAt = at + buffer.duration;
    node.onended = () => this.onPlayed(startMs + (samples.length * 1000) / sampleRateHz);
  }
}
