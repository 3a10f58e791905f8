// Server-sent events reader: yields the `data` payload of each event from a
// byte stream, however the bytes are split across chunks. Used by SglangClient
// and by the sidecar's OpenAI-compatible background client (one parser).

export async function* readSseData(chunks: AsyncIterable<Uint8Array | string>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buffer = "";
  let data: string[] = [];
  const takeLine = (line: string): string | undefined => {
    if (line === "") {
      if (data.length === 0) return undefined;
      const payload = data.join("\n");
      data = [];
      return payload;
    }
    if (line.startsWith(":")) return undefined;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") data.push(value);
    return undefined;
  };
  for await (const chunk of chunks) {
    buffer += typeof chunk === "string" ? chunk : decoder.decode(chunk, { stream: true });
    let newline: number;
    while ((newline = buffer.search(/\r\n|\r|\n/)) !== -1) {
      // A lone trailing \r may be the first half of \r\n: wait for the next chunk.
      if (buffer[newline] === "\r" && newline === buffer.length - 1) break;
      const width = buffer.startsWith("\r\n", newline) ? 2 : 1;
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + width);
      const payload = takeLine(line);
      if (payload !== undefined) yield payload;
    }
  }
  buffer += decoder.decode();
  if (buffer !== "") takeLine(buffer.replace(/\r$/, ""));
  // A final event without its blank line still counts (servers that close right after it).
  const last = takeLine("");
  if (last !== undefined) yield last;
}
