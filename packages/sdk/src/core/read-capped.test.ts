import { Readable } from "node:stream";
import type { Dispatcher } from "undici";
import { describe, expect, it } from "vitest";
import { readCapped } from "./read-capped.js";

const body = (chunks: string[]) => Readable.from(chunks.map((c) => Buffer.from(c))) as unknown as Dispatcher.ResponseData["body"];

describe("readCapped", () => {
  it("reads a body under the cap whole", async () => {
    expect(await readCapped(body(["héllo ", "world"]), 64)).toEqual({ text: "héllo world", truncated: false });
  });

  it("stops at the cap, says so and destroys the rest of the body", async () => {
    const b = body(["abcd", "efgh", "ijkl"]);
    expect(await readCapped(b, 6)).toEqual({ text: "abcdef", truncated: true });
    expect((b as unknown as Readable).destroyed).toBe(true);
  });

  it("a body of exactly the cap is not cut", async () => {
    expect(await readCapped(body(["abc", "def"]), 6)).toEqual({ text: "abcdef", truncated: false });
  });
});
