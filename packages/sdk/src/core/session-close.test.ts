// close(): what input goes out, and what the `close` event says when SessionEnded never came.
import { PROTOCOL_VERSION, type ServerEvent } from "@microturn/protocol";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Microturn } from "../client.js";
import { ConnectionError, type MicroturnError, TimeoutError } from "./error.js";
import { InteractionSession } from "./session.js";
import type { Transport, TransportHandlers, TransportStream } from "./transport.js";
import { type FakeSidecar, startFakeSidecar } from "../testing/fake-sidecar.js";

let fake: FakeSidecar;

beforeEach(async () => {
  fake = await startFakeSidecar();
});

afterEach(async () => {
  await fake.close();
});

function samplesAtServer(): number {
  return fake.session().chunks.reduce((n, chunk) => n + (chunk.pcm?.pcm16.length ?? 0) / 2, 0);
}

/** A server that starts the session, then never answers SessionEnd (hung, or cut off). */
class DeafTransport implements Transport {
  open(handlers: TransportHandlers): TransportStream {
    const started: ServerEvent = {
      eventSeq: 1,
      event: {
        $case: "started",
        value: { sessionId: "s", resumeToken: "t", protocolVersion: PROTOCOL_VERSION, capabilities: undefined, resumeGraceMs: 30_000, resumed: false, nextInputSeq: 0, maxOutputTokensPerTurn: 6 },
      },
    };
    return {
      send: (event) => {
        if (event.event?.$case === "start") setImmediate(() => handlers.onEvent(started));
      },
      end: () => undefined,
      cancel: () => undefined,
    };
  }
  close(): void {}
}

describe("close() sends pending input", () => {
  it("sends every pending chunk of audio, not just the first", async () => {
    const session = await new Microturn({ url: fake.url, clock: "manual" }).connect();
    session.sendAudio(new Int16Array(16_000).fill(1000), 16_000);
    await session.close();
    expect(fake.session().chunks).toHaveLength(5);
    expect(samplesAtServer()).toBe(16_000);
    expect(session.pendingAudioMs).toBe(0);
  });

  it("sends what the resampler held back", async () => {
    const session = await new Microturn({ url: fake.url, clock: "manual" }).connect();
    session.sendAudio(new Float32Array(9600).fill(0.1), 48_000);
    session.flushChunk();
    await session.close();
    expect(samplesAtServer()).toBe(3200);
  });
});

describe("close event without SessionEnded", () => {
  it("carries a TimeoutError when the server never answers SessionEnd; close() still resolves", async () => {
    const session = new InteractionSession(new DeafTransport(), {}, { clock: "manual", closeTimeoutMs: 50 });
    await session.connect();
    const closed = new Promise<MicroturnError | undefined>((resolve) => session.on("close", ({ error }) => resolve(error)));
    await session.close();
    expect(TimeoutError.isInstance(await closed)).toBe(true);
  });

  it("is clean with closeTimeoutMs 0: the caller chose not to wait", async () => {
    const session = new InteractionSession(new DeafTransport(), {}, { clock: "manual", closeTimeoutMs: 0 });
    await session.connect();
    const closed = new Promise<MicroturnError | undefined>((resolve) => session.on("close", ({ error }) => resolve(error)));
    await session.close();
    expect(await closed).toBeUndefined();
  });

  it("carries a ConnectionError when the stream ends without SessionEnded and reconnect is off", async () => {
    const session = await new Microturn({ url: fake.url, clock: "manual", reconnect: { enabled: false } }).connect();
    const closed = new Promise<MicroturnError | undefined>((resolve) => session.on("close", ({ error }) => resolve(error)));
    fake.session().detach((peer) => peer.end());
    expect(ConnectionError.isInstance(await closed)).toBe(true);
  });
});
