// Reading an HTTP body whole, with a bound: a server that answers with more than
// the caller will hold is cut off, not buffered.
import type { Dispatcher } from "undici";

/** Reads a body as UTF-8 up to `maxBytes`; past that it stops, drops the rest of the body and says it was cut. */
export async function readCapped(body: Dispatcher.ResponseData["body"], maxBytes: number): Promise<{ text: string; truncated: boolean }> {
  const parts: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    if (bytes + chunk.length > maxBytes) {
      parts.push(chunk.subarray(0, maxBytes - bytes));
      body.destroy();
      return { text: Buffer.concat(parts).toString("utf8"), truncated: true };
    }
    parts.push(chunk);
    bytes += chunk.length;
  }
  return { text: Buffer.concat(parts).toString("utf8"), truncated: false };
}
