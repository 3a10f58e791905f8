import { ErrorCode, ServerEvent } from "@microturn/protocol";
import { describe, expect, it } from "vitest";
import { encodeServerEvent } from "./server.js";

const output = (seq: number, text: string) => ServerEvent.fromPartial({ eventSeq: seq, event: { $case: "output", value: { seq, startMs: seq * 200, durationMs: 200, text } } });

describe("encodeServerEvent", () => {
  it("gives the generated encoding, each event in bytes of its own", () => {
    const small = encodeServerEvent(output(1, "hi"));
    const large = encodeServerEvent(output(2, "x".repeat(5000)));
    const again = encodeServerEvent(output(3, "yo"));
    expect(Buffer.compare(small, Buffer.from(ServerEvent.encode(output(1, "hi")).finish()))).toBe(0);
    expect(ServerEvent.decode(large)).toEqual(output(2, "x".repeat(5000)));
    // Reusing the writer did not overwrite what was handed out before.
    expect(ServerEvent.decode(small)).toEqual(output(1, "hi"));
    expect(ServerEvent.decode(again)).toEqual(output(3, "yo"));
  });

  it("sends an error in the place of an event that failed to encode, and starts clean after it", () => {
    // A uint32 field out of range fails inside the nested message, after the event's first fields were written.
    const bad = ServerEvent.fromPartial({ eventSeq: 1, event: { $case: "output", value: { seq: 1, startMs: 200, durationMs: -5, text: "ok" } } });
    // It is sent as an error in its place, so the stream goes on.
    expect(ServerEvent.decode(encodeServerEvent(bad))).toMatchObject({
      eventSeq: 1,
      event: { $case: "error", value: { code: ErrorCode.ERROR_CODE_INTERNAL, fatal: false, message: expect.stringMatching(/could not encode its output event \(invalid uint32: -5\)/) } },
    });
    const fractional = ServerEvent.fromPartial({ eventSeq: 2, event: { $case: "output", value: { seq: 2, durationMs: 37.5 } } });
    expect(ServerEvent.decode(encodeServerEvent(fractional)).event?.$case).toBe("error");
    const next = encodeServerEvent(output(4, "fine"));
    expect(ServerEvent.decode(next)).toEqual(output(4, "fine"));
  });
});
