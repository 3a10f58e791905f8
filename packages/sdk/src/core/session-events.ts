// The session's event catalogue. Server events keep their proto oneof names
// and payload types (ServerEventPayload<N>); the SDK adds its own lifecycle events.
import type { InputChunk, ServerEventName, ServerEventPayload } from "@microturn/protocol";
import type { MicroturnError } from "./error.js";
import type { ReconnectedInfo, ReconnectingInfo } from "../internal/session-link.js";

export type { ReconnectedInfo, ReconnectingInfo };

/** Where a server event sat in the session's stream. */
export interface ServerEventMeta {
  eventSeq: number;
}

/** Server events other than `error`, with the payload type their name implies. */
export type ServerEvents = {
  [N in Exclude<ServerEventName, "error">]: [payload: ServerEventPayload<N>, meta: ServerEventMeta];
};

export interface LifecycleEvents {
  /** A SessionError from the server (typed, see errorFromSessionError) or a client-side failure. */
  error: [error: MicroturnError];
  /** The stream dropped (or a GoAway came) and a resume attempt is about to start. */
  reconnecting: [info: ReconnectingInfo];
  /** The session was resumed; unacked input was sent again. */
  reconnected: [info: ReconnectedInfo];
  /** An input chunk was cut and handed to the transport. */
  inputSent: [chunk: InputChunk];
  /** The session is over; `error` says why when it did not end cleanly. */
  close: [info: { error: MicroturnError | undefined }];
}

export type SessionEvents = ServerEvents & LifecycleEvents;
export type SessionEventName = keyof SessionEvents;

/** One item of `for await (const event of session)`: the event name and its payload. */
export type SessionEvent = { [K in SessionEventName]: { type: K; data: SessionEvents[K][0] } }[SessionEventName];

/** One piece of output audio from `session.audio()`. */
export interface OutputAudio {
  samples: Int16Array;
  sampleRateHz: number;
  /** Output time at which it starts, in ms. */
  startMs: number;
  /** The input seq whose micro-turn produced it. */
  seq: number;
}
