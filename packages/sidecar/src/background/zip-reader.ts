// Reads the ZIP archive SGLang's GetTokenizer streams (stored or deflated
// entries, no encryption, no ZIP64): enough for a directory of tokenizer files.
import { crc32, inflateRawSync } from "node:zlib";
import { BackgroundError } from "./errors.js";

const END_OF_CENTRAL_DIRECTORY = 0x06054b50;
const CENTRAL_FILE_HEADER = 0x02014b50;
const LOCAL_FILE_HEADER = 0x04034b50;

function bad(message: string): BackgroundError {
  return new BackgroundError("bad_response", `tokenizer archive: ${message}`);
}

/** Entry name -> bytes. Throws BackgroundError("bad_response") on a damaged or unsupported archive. */
export function readZipEntries(archive: Buffer, options: { maxEntryBytes?: number } = {}): Map<string, Buffer> {
  const maxEntryBytes = options.maxEntryBytes ?? 256 * 1024 * 1024;
  // The end record sits in the last 22 + 65535 (comment) bytes.
  let eocd = -1;
  for (let i = archive.length - 22; i >= Math.max(0, archive.length - 22 - 0xffff); i--) {
    if (archive.readUInt32LE(i) === END_OF_CENTRAL_DIRECTORY) {
      eocd = i;
      break;
    }
  }
  if (eocd === -1) throw bad("no end-of-central-directory record (not a ZIP file)");
  const count = archive.readUInt16LE(eocd + 10);
  let offset = archive.readUInt32LE(eocd + 16);
  const entries = new Map<string, Buffer>();
  for (let n = 0; n < count; n++) {
    if (offset + 46 > archive.length || archive.readUInt32LE(offset) !== CENTRAL_FILE_HEADER) throw bad(`central directory entry ${n} is damaged`);
    const flags = archive.readUInt16LE(offset + 8);
    const method = archive.readUInt16LE(offset + 10);
    const crc = archive.readUInt32LE(offset + 16);
    const compressedSize = archive.readUInt32LE(offset + 20);
    const size = archive.readUInt32LE(offset + 24);
    const nameLength = archive.readUInt16LE(offset + 28);
    const extraLength = archive.readUInt16LE(offset + 30);
    const commentLength = archive.readUInt16LE(offset + 32);
    const localOffset = archive.readUInt32LE(offset + 42);
    const name = archive.subarray(offset + 46, offset + 46 + nameLength).toString("utf8");
    offset += 46 + nameLength + extraLength + commentLength;
    if ((flags & 0x1) !== 0) throw bad(`${name} is encrypted`);
    if (size > maxEntryBytes) throw bad(`${name} is ${size} bytes, over the ${maxEntryBytes}-byte limit`);
    if (name.endsWith("/")) continue;
    if (localOffset + 30 > archive.length || archive.readUInt32LE(localOffset) !== LOCAL_FILE_HEADER) throw bad(`local header of ${name} is damaged`);
    const dataStart = localOffset + 30 + archive.readUInt16LE(localOffset + 26) + archive.readUInt16LE(localOffset + 28);
    const raw = archive.subarray(dataStart, dataStart + compressedSize);
    if (raw.length !== compressedSize) throw bad(`${name} is truncated`);
    let data: Buffer;
    if (method === 0) data = Buffer.from(raw);
    else if (method === 8) {
      try {
        data = inflateRawSync(raw, { maxOutputLength: maxEntryBytes });
      } catch (err) {
        throw new BackgroundError("bad_response", `tokenizer archive: ${name} does not inflate: ${(err as Error).message}`, { cause: err });
      }
    } else throw bad(`${name} uses compression method ${method} (only stored and deflate are read)`);
    if (data.length !== size || crc32(data) !== crc) throw bad(`${name} fails its size or CRC check`);
    entries.set(name, data);
  }
  return entries;
}
