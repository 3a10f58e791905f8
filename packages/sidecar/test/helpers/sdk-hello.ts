// One round through the SDK against a test sidecar: a chunk of text in, the
// first spoken output back (the fake engine answers in capitals, echo as is).
import type { InteractionSession, Microturn } from "@microturn/sdk";

/** Sends `text` in one chunk; resolves with the first output that is not silence. */
export function say(session: InteractionSession, text: string): Promise<string> {
  const output = new Promise<string>((resolve) => session.on("output", (o) => !o.silent && resolve(o.text)));
  session.sendChunk({ text });
  return output;
}

/** Opens a session on `client` (added to `opened`, for the test to close) and says "hello" on it. */
export async function hello(client: Microturn, opened: InteractionSession[]): Promise<string> {
  const session = client.session();
  opened.push(session);
  await session.connect({ signal: AbortSignal.timeout(5000) });
  return say(session, "hello");
}
