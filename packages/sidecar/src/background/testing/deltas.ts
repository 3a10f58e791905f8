// Reading a background client's stream in tests: every delta, or the typed
// failure it ends with.
import type { BackgroundDelta } from "../client.js";
import { BackgroundError } from "../errors.js";

export async function collect(stream: AsyncIterable<BackgroundDelta>): Promise<BackgroundDelta[]> {
  const out: BackgroundDelta[] = [];
  for await (const delta of stream) out.push(delta);
  return out;
}

/** The BackgroundError the stream fails with; throws when it ends without one. */
export async function failure(stream: AsyncIterable<BackgroundDelta>): Promise<BackgroundError> {
  try {
    await collect(stream);
  } catch (err) {
    if (BackgroundError.isInstance(err)) return err;
    throw err;
  }
  throw new Error("stream did not fail");
}
