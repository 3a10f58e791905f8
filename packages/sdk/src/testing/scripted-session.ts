// A session for app tests without a sidecar: the real InteractionSession over
// an in-memory transport to the fake sidecar, replying from a script.
import type { OutputChunk } from "@microturn/protocol";
import { InteractionSession, type SessionConfigInput, type SessionOptions } from "../core/session.js";
import { FakeSidecar, type FakeSidecarOptions } from "./fake-sidecar.js";
import type { FakeSession } from "./fake-session.js";
import { InMemoryTransport } from "./in-memory-transport.js";

export interface ScriptedSessionOptions extends Omit<FakeSidecarOptions, "port" | "webSocketServer" | "reply"> {
  /**
   * Output for input chunks in order: reply i answers chunk i (a string is
   * text, null is silence); chunks after the list get silence.
   */
  replies?: Array<string | Partial<OutputChunk> | null>;
  /** Full control instead of `replies`. */
  reply?: FakeSidecarOptions["reply"];
  config?: SessionConfigInput;
  /** Session options; the clock defaults to manual so tests decide when chunks are cut. */
  session?: SessionOptions;
}

export class ScriptedSession extends InteractionSession {
  constructor(
    readonly sidecar: FakeSidecar,
    config: SessionConfigInput,
    options: SessionOptions,
  ) {
    super(new InMemoryTransport(sidecar), config, options);
  }

  /** The server side of this session: chunks taken, tool results, delegates, history. */
  get server(): FakeSession {
    return this.sidecar.session(this.id);
  }
}

/** A connected session whose "model" answers from `replies`. Register tools with `options.config.tools`. */
export async function createScriptedSession(options: ScriptedSessionOptions = {}): Promise<ScriptedSession> {
  const replies = options.replies;
  const reply: FakeSidecarOptions["reply"] =
    options.reply ??
    (replies
      ? (chunk) => {
          const next = replies[chunk.seq];
          if (next === undefined || next === null) return undefined;
          return typeof next === "string" ? { text: next } : next;
        }
      : undefined);
  const sidecar = new FakeSidecar({ ...options, reply });
  const session = new ScriptedSession(sidecar, options.config ?? {}, { clock: "manual", ...options.session });
  await session.connect();
  return session;
}
