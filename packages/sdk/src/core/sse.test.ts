import { describe, expect, it } from "vitest";
import { readSseData, SseLimitError } from "./sse.js";

async function collect(parts: string[]): Promise<string[]> {
  const encoder = new TextEncoder();
  async function* chunks() {
    for (const part of parts) yield encoder.encode(part);
  }
  const out: string[] = [];
  for await (const data of readSseData(chunks())) out.push(data);
  return out;
}

describe("readSseData", () => {
  it("yields each event's data however the bytes are split", async () => {
    const text = 'data: {"a":1}\n\ndata: {"b":2}\n\ndata: [DONE]\n\n';
    const whole = await collect([text]);
    expect(whole).toEqual(['{"a":1}', '{"b":2}', "[DONE]"]);
    const byteByByte = await collect(text.split(""));
    expect(byteByByte).toEqual(whole);
  });

  it("handles CRLF split between chunks, comments and multi-line data", async () => {
    expect(await collect(["data: x\r", "\n\r\n: keep-alive\r\n\r\ndata: a\ndata: b\n\n"])).toEqual(["x", "a\nb"]);
  });

  it("keeps a multi-byte character split across chunks", async () => {
    const bytes = new TextEncoder().encode("data: héllo €\n\n");
    async function* chunks() {
      for (const b of bytes) yield new Uint8Array([b]);
    }
    const out: string[] = [];
    for await (const data of readSseData(chunks())) out.push(data);
    expect(out).toEqual(["héllo €"]);
  });

  it("does not dispatch an event whose data is empty (a bare data: line)", async () => {
    expect(await collect(['data:\n\ndata: {"a":1}\n\ndata:\ndata:\n\n'])).toEqual(['{"a":1}', "\n"]);
  });

  it("yields a last event that lacks its blank line", async () => {
    expect(await collect(["data: one\n\ndata: two"])).toEqual(["one", "two"]);
  });

  it("refuses an event or an unended line past the limit, and reads many chunks of one long line", async () => {
    async function* parts(list: string[]) {
      for (const part of list) yield part;
    }
    const read = async (list: string[], maxEventChars: number) => {
      const out: string[] = [];
      for await (const data of readSseData(parts(list), { maxEventChars })) out.push(data);
      return out;
    };
    const long = Array.from({ length: 2000 }, () => "x".repeat(50));
    expect(await read(["data: ", ...long, "\n\n"], 200_000)).toEqual(["x".repeat(100_000)]);
    await expect(read(["data: ", ...long], 50_000)).rejects.toBeInstanceOf(SseLimitError);
    await expect(read(Array.from({ length: 100 }, () => `data: ${"y".repeat(1000)}\n`), 50_000)).rejects.toThrow(/longer than 50000 characters/);
    expect(await read(Array.from({ length: 100 }, () => `data: ${"y".repeat(1000)}\n\n`), 50_000)).toHaveLength(100);
  });
});
