// @microturn/protocol: the wire contract generated from proto/microturn/v1,
// plus the few names both sides need to speak it (version, event-name unions).
export * from "./gen/microturn/v1/common.js";
export * from "./gen/microturn/v1/engine.js";
export * from "./gen/microturn/v1/interaction.js";
export * from "./gen/microturn/v1/handoff.js";

import type { ClientEvent, ServerEvent } from "./gen/microturn/v1/interaction.js";
import type { AppendResponse } from "./gen/microturn/v1/engine.js";

/**
 * Version of the wire contract, `MAJOR.MINOR`. Peers with the same major
 * version interoperate; a minor bump only adds fields or events.
 */
export const PROTOCOL_VERSION = "1.0";

/**
 * The most bytes one encoded ClientEvent or ServerEvent may take, over gRPC and
 * WebSocket alike: a larger message ends the stream (RESOURCE_EXHAUSTED, close
 * code 1009), so clients keep each input chunk under it (about two 1080p RGB
 * frames).
 */
export const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

/** Names of the events a client sends (the `ClientEvent.event` oneof cases). */
export type ClientEventName = NonNullable<ClientEvent["event"]>["$case"];
/** Names of the events a server sends (the `ServerEvent.event` oneof cases). */
export type ServerEventName = NonNullable<ServerEvent["event"]>["$case"];
/** The oneof member of a client event with the given name. */
export type ClientEventOf<N extends ClientEventName> = Extract<NonNullable<ClientEvent["event"]>, { $case: N }>;
/** The oneof member of a server event with the given name. */
export type ServerEventOf<N extends ServerEventName> = Extract<NonNullable<ServerEvent["event"]>, { $case: N }>;
/** Payload type of the server event with the given name. */
export type ServerEventPayload<N extends ServerEventName> = ServerEventOf<N>["value"];
/** Payload type of the client event with the given name. */
export type ClientEventPayload<N extends ClientEventName> = ClientEventOf<N>["value"];
/** Names of the messages of an engine Append stream. */
export type AppendEventName = NonNullable<AppendResponse["event"]>["$case"];

/** Every server event name, in proto field order. */
export const SERVER_EVENT_NAMES = [
  "started",
  "output",
  "inputAck",
  "toolCall",
  "background",
  "error",
  "goAway",
  "metrics",
  "ended",
] as const satisfies readonly ServerEventName[];

/** Every client event name, in proto field order. */
export const CLIENT_EVENT_NAMES = [
  "start",
  "resume",
  "input",
  "playback",
  "interrupt",
  "toolResult",
  "delegate",
  "cancelTask",
  "end",
] as const satisfies readonly ClientEventName[];

/** Major part of a `MAJOR.MINOR` protocol version, or NaN when malformed. */
export function protocolMajor(version: string): number {
  const match = /^(\d+)\.(\d+)$/.exec(version);
  return match ? Number(match[1]) : Number.NaN;
}

/** True when a peer speaking `version` can talk to this build. */
export function isCompatibleProtocol(version: string): boolean {
  return protocolMajor(version) === protocolMajor(PROTOCOL_VERSION);
}

/** The standard gRPC health service (grpc.health.v1), served by the sidecar. */
export * as grpcHealth from "./gen/grpc/health/v1/health.js";
