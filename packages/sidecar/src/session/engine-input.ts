// Input shaping: a client InputChunk becomes the chunk the engine takes (dMel
// codes, patches, a note for input the engine cannot take, the context due now).
import { ErrorCode, Modality, UnsupportedInput, type ContextItem, type DmelAudio, type InputChunk, type SessionConfig, type VideoPatches } from "@microturn/protocol";
import type { EngineCapabilities, EngineChunk } from "../engines/engine.js";
import { SessionFault } from "../errors.js";

/** Turns client media into what the engine takes (dMel codes, patches), per session. */
export interface InputMedia {
  audio(pcm: NonNullable<InputChunk["pcm"]>): DmelAudio;
  video(frames: InputChunk["frames"]): VideoPatches[];
}

export interface EngineInputOptions {
  capabilities: Pick<EngineCapabilities, "engine" | "inputModalities">;
  config: Pick<SessionConfig, "unsupportedInput">;
  /** Needed only for raw PCM or frames on an engine that takes that modality. */
  media?: InputMedia;
  reportError: (err: unknown, context: { seq?: number }) => void;
  /** The background and tool results due at this chunk's boundary; called once per chunk, last. */
  takeDeliveries: (chunk: InputChunk) => ContextItem[];
}

export class EngineInput {
  private readonly opts: EngineInputOptions;
  private readonly notedUnsupported = new Set<Modality>();

  constructor(options: EngineInputOptions) {
    this.opts = options;
  }

  toEngineChunk(chunk: InputChunk): EngineChunk {
    const caps = this.opts.capabilities;
    const notes: string[] = [];
    const engineChunk: EngineChunk = { seq: chunk.seq, startMs: chunk.startMs, durationMs: chunk.durationMs, text: chunk.text };
    const hasAudio = chunk.pcm !== undefined || chunk.dmel !== undefined;
    const hasVideo = chunk.frames.length > 0 || chunk.patches.length > 0;
    if (hasAudio) {
      if (caps.inputModalities.includes(Modality.MODALITY_AUDIO)) {
        engineChunk.audio = chunk.dmel ?? this.media().audio(chunk.pcm!);
      } else notes.push(this.unsupported(Modality.MODALITY_AUDIO, chunk, "audio"));
    }
    if (hasVideo) {
      if (caps.inputModalities.includes(Modality.MODALITY_VIDEO)) {
        engineChunk.video = [...chunk.patches, ...(chunk.frames.length ? this.media().video(chunk.frames) : [])];
      } else notes.push(this.unsupported(Modality.MODALITY_VIDEO, chunk, "video"));
    }
    const note = notes.filter(Boolean).join(" ");
    if (note) engineChunk.text = engineChunk.text ? `${note} ${engineChunk.text}` : note;
    engineChunk.context = this.opts.takeDeliveries(chunk);
    return engineChunk;
  }

  private media(): InputMedia {
    if (!this.opts.media) throw new SessionFault(ErrorCode.ERROR_CODE_INTERNAL, "no media converter configured for this engine");
    return this.opts.media;
  }

  /** Applies the session's unsupported-input policy; returns the note to add to the text, if any. */
  private unsupported(modality: Modality, chunk: InputChunk, name: string): string {
    const policy = this.opts.config.unsupportedInput;
    const engine = this.opts.capabilities.engine;
    if (policy === UnsupportedInput.UNSUPPORTED_INPUT_NOTE) {
      if (!this.notedUnsupported.has(modality)) {
        this.notedUnsupported.add(modality);
        this.opts.reportError(
          new SessionFault(ErrorCode.ERROR_CODE_UNSUPPORTED_MODALITY, `engine ${engine} cannot take ${name}; it is replaced by a note in the model's input (reported once)`, { seq: chunk.seq }),
          { seq: chunk.seq },
        );
      }
      return `[${name}: ${chunk.durationMs} ms]`;
    }
    this.opts.reportError(
      new SessionFault(ErrorCode.ERROR_CODE_UNSUPPORTED_MODALITY, `engine ${engine} cannot take ${name}; the ${name} of seq ${chunk.seq} was not used (set unsupported_input NOTE to replace it by a note)`, {
        seq: chunk.seq,
      }),
      { seq: chunk.seq },
    );
    return "";
  }
}
