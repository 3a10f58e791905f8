// Events that arrive in the same read as SessionStarted (a GoAway sent right
// after it, a replay that ends in an error, the stream's end) are handled as
// on an open link: a transport that hands them over in one turn of the event
// loop, as a socket read holding several frames does.
import { ErrorCode, PROTOCOL_VERSION, type ClientEvent, type ServerEvent, type SessionStarted } from "@microturn/protocol";
import { describe, expect, it } from "vitest";
import { InteractionSession } from "../core/session.js";
import type { Transport, TransportHandlers, TransportStream } from "../core/transport.js";

type Body = NonNullable<ServerEvent["event"]>;
/** What the server answers a stream's first event with, all in one turn; "close" ends the stream. */
type Reply = (first: ClientEvent) => (Body | "close")[];

class OneReadTransport implements Transport {
  readonly firsts: ClientEvent[] = [];
  readonly sent: ClientEvent[] = [];
  closed = 0;
  private eventSeq = 0;

  constructor(private readonly replies: Reply[]) {}

  open(handlers: TransportHandlers): TransportStream {
    const reply = this.replies[this.firsts.length];
    let cancelled = false;
    return {
      send: (event) => {
        if (cancelled) return;
        this.sent.push(event);
        if (this.sent.filter((e) => e.event?.$case === "start" || e.event?.$case === "resume").length !== this.firsts.length + 1) return;
        this.firsts.push(event);
        if (!reply) return;
        setImmediate(() => {
          for (const item of reply(event)) {
            if (cancelled) return;
            if (item === "close") handlers.onClose();
            else handlers.onEvent({ eventSeq: ++this.eventSeq, event: item });
          }
        });
      },
      end: () => undefined,
      cancel: () => {
        cancelled = true;
      },
    };
  }

  close(): void {
    this.closed++;
  }
}

function started(token: string, nextInputSeq = 0): Body {
  const value: SessionStarted = {
    sessionId: "s1",
    resumeToken: token,
    protocolVersion: PROTOCOL_VERSION,
    capabilities: undefined,
    resumeGraceMs: 30_000,
    resumed: token !== "t0",
    nextInputSeq,
    maxOutputTokensPerTurn: 6,
  };
  return { $case: "started", value };
}

const goAway = (token: string): Body => ({ $case: "goAway", value: { reason: "sidecar shutting down", resumeToken: token, deadlineMs: 1000 } });

function resumeToken(event: ClientEvent): string {
  return event.event?.$case === "resume" ? event.event.value.resumeToken : "";
}

function track(session: InteractionSession): string[] {
  const seen: string[] = [];
  for (const type of ["started", "goAway", "ended", "reconnecting", "reconnected"] as const) session.on(type, () => seen.push(type));
  session.on("error", (error) => seen.push(`error ${error.message}`));
  session.on("close", ({ error }) => seen.push(`close ${error?.name ?? "clean"}`));
  return seen;
}

async function until(check: () => boolean): Promise<void> {
  const deadline = Date.now() + 2000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const options = { clock: "manual" as const, reconnect: { initialDelayMs: 1, maxDelayMs: 5, maxAttempts: 3 } };

describe("events read with SessionStarted", () => {
  it("a GoAway right after SessionStarted moves the session on with the GoAway's token", async () => {
    const transport = new OneReadTransport([() => [started("t0"), goAway("t1")], () => [started("t2", 0)]]);
    const session = new InteractionSession(transport, {}, options);
    const seen = track(session);
    await session.connect();
    await until(() => seen.includes("reconnected"));
    expect(transport.firsts.map(resumeToken)).toEqual(["", "t1"]);
    expect(session.state).toBe("open");
    session.sendChunk({ text: "after the move" });
    expect(transport.sent.at(-1)?.event?.$case).toBe("input");
    await session.close({ timeoutMs: 50 });
  });

  it("a GoAway read with a resume's SessionStarted sends the session on again", async () => {
    const transport = new OneReadTransport([
      () => [started("t0"), "close"],
      () => [started("t1"), goAway("t2")],
      () => [started("t3")],
    ]);
    const session = new InteractionSession(transport, {}, options);
    const seen = track(session);
    await session.connect();
    await until(() => transport.firsts.length === 3 && session.state === "open");
    expect(transport.firsts.map(resumeToken)).toEqual(["", "t0", "t2"]);
    expect(seen.filter((e) => e === "reconnected")).toHaveLength(2);
    await session.close({ timeoutMs: 50 });
  });

  it("a fatal error and the stream's end read with SessionStarted close the session and its transport", async () => {
    const fatal: Body = {
      $case: "error",
      value: { code: ErrorCode.ERROR_CODE_ENGINE, message: "engine failed", retryable: false, seq: 0, eventId: "", fatal: true },
    };
    const transport = new OneReadTransport([() => [started("t0"), fatal, "close"]]);
    const session = new InteractionSession(transport, {}, { clock: "realtime" });
    const seen = track(session);
    // connect() fails with the error the session closed with (the `error` and `close` events have told listeners too).
    const refused = await session.connect().catch((error: unknown) => error);
    expect((refused as Error).name).toBe("InternalServerError");
    expect((refused as Error).message).toBe("engine failed");
    expect(session.state).toBe("closed");
    expect(transport.closed).toBe(1);
    expect(seen).toEqual(["started", "error engine failed", "close InternalServerError"]);
    // No clock runs for a closed session: nothing more is cut or sent.
    await new Promise((resolve) => setTimeout(resolve, 250));
    expect(transport.sent.filter((e) => e.event?.$case === "input")).toEqual([]);
    await session.close();
  });

  it("SessionEnded and the stream's end read with SessionStarted close the session cleanly", async () => {
    const ended: Body = { $case: "ended", value: { reason: "done", chunks: 0, recordingPath: "" } };
    const transport = new OneReadTransport([() => [started("t0"), ended, "close"]]);
    const session = new InteractionSession(transport, {}, options);
    const seen = track(session);
    await expect(session.connect()).rejects.toThrow(/ended as soon as it started/);
    expect(session.state).toBe("closed");
    expect(seen).toEqual(["started", "ended", "close clean"]);
  });

  it("a stream that ends right after SessionStarted is resumed", async () => {
    const transport = new OneReadTransport([() => [started("t0"), "close"], () => [started("t1")]]);
    const session = new InteractionSession(transport, {}, options);
    const seen = track(session);
    await session.connect();
    await until(() => seen.includes("reconnected"));
    expect(transport.firsts.map(resumeToken)).toEqual(["", "t0"]);
    expect(session.state).toBe("open");
    await session.close({ timeoutMs: 50 });
  });
});
