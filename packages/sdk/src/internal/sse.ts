// Server-sent events reader: turns a byte stream into the `data:` payloads of
// each event. UTF-8 is decoded in streaming mode, so a character split across
// two network reads arrives whole.

/** Yields each event's data (multi-line data joined with "\n"); comments and other fields are skipped. */
export async function* readSseData(body: AsyncIterable<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder("utf-8");
  let buffer = "";
  for await (const bytes of body) {
    buffer += decoder.decode(bytes, { stream: true });
    yield* drain(false);
  }
  buffer += decoder.decode();
  yield* drain(true);

  function* drain(atEnd: boolean): Generator<string> {
    for (;;) {
      const match = /\r?\n\r?\n/.exec(buffer);
      let block: string;
      if (match) {
        block = buffer.slice(0, match.index);
        buffer = buffer.slice(match.index + match[0].length);
      } else if (atEnd && buffer.trim() !== "") {
        block = buffer;
        buffer = "";
      } else {
        return;
      }
      const data = eventData(block);
      if (data !== undefined) yield data;
    }
  }
}

function eventData(block: string): string | undefined {
  const lines: string[] = [];
  for (const line of block.split(/\r?\n/)) {
    if (!line.startsWith("data:")) continue;
    lines.push(line.startsWith("data: ") ? line.slice(6) : line.slice(5));
  }
  return lines.length === 0 ? undefined : lines.join("\n");
}
