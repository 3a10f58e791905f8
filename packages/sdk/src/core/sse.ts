// Server-sent events reader: yields the `data` payload of each event from a
// byte stream, however the bytes are split across chunks. Used by SglangClient
// and by the sidecar's OpenAI-compatible background client (one parser).

/** Thrown when one event grows past the reader's limit (a server that never ends a line or an event). */
export class SseLimitError extends Error {
  constructor(readonly limitChars: number) {
    super(`server-sent event longer than ${limitChars} characters`);
    this.name = "SseLimitError";
  }
}

export interface ReadSseOptions {
  /** Longest event (its data lines together, or a line still without its end), characters. Default 8 MiB. */
  maxEventChars?: number;
}

export async function* readSseData(chunks: AsyncIterable<Uint8Array | string>, options: ReadSseOptions = {}): AsyncGenerator<string> {
  const maxEventChars = options.maxEventChars ?? 8 * 1024 * 1024;
  const decoder = new TextDecoder();
  const lineEnd = /\r\n|\r|\n/g;
  // The line so far, in pieces: each chunk is searched once, so a long line costs its length, not its length per chunk.
  let pending: string[] = [];
  let pendingChars = 0;
  // The last chunk ended in \r: a \n opening the next one belongs to it.
  let skipLf = false;
  let data: string[] = [];
  let dataChars = 0;
  const takeLine = (line: string): string | undefined => {
    if (line === "") {
      if (data.length === 0) return undefined;
      const payload = data.join("\n");
      data = [];
      dataChars = 0;
      // An event whose data is empty (a bare `data:`) is not dispatched, as the SSE spec has it.
      return payload === "" ? undefined : payload;
    }
    if (line.startsWith(":")) return undefined;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") {
      dataChars += value.length + 1;
      if (dataChars > maxEventChars) throw new SseLimitError(maxEventChars);
      data.push(value);
    }
    return undefined;
  };
  for await (const chunk of chunks) {
    const text = typeof chunk === "string" ? chunk : decoder.decode(chunk, { stream: true });
    if (text === "") continue;
    let pos = skipLf && text[0] === "\n" ? 1 : 0;
    skipLf = false;
    lineEnd.lastIndex = pos;
    for (let match = lineEnd.exec(text); match !== null; match = lineEnd.exec(text)) {
      let line = text.slice(pos, match.index);
      if (pending.length > 0) {
        line = pending.join("") + line;
        pending = [];
        pendingChars = 0;
      }
      pos = match.index + match[0].length;
      if (match[0] === "\r" && pos === text.length) skipLf = true;
      const payload = takeLine(line);
      if (payload !== undefined) yield payload;
    }
    if (pos < text.length) {
      pending.push(text.slice(pos));
      pendingChars += text.length - pos;
      if (pendingChars > maxEventChars) throw new SseLimitError(maxEventChars);
    }
  }
  const rest = pending.join("") + decoder.decode();
  if (rest !== "") takeLine(rest);
  // A final event without its blank line still counts (servers that close right after it).
  const last = takeLine("");
  if (last !== undefined) yield last;
}
