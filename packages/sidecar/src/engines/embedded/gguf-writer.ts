// Minimal GGUF v3 writer: metadata key/values and f32 tensors, streamed to a
// file so a 130 MB model never sits in memory at once. Only what the tiny
// test models need; the format itself is documented in ggml's gguf.md.
import { closeSync, openSync, writeSync } from "node:fs";

/** GGUF files start with these four bytes ("GGUF"). */
export const GGUF_MAGIC = Buffer.from("GGUF", "ascii");
const GGUF_VERSION = 3;
const ALIGNMENT = 32;
const GGML_TYPE_F32 = 0;

const enum ValueType {
  Uint32 = 4,
  Int32 = 5,
  Float32 = 6,
  Bool = 7,
  String = 8,
  Array = 9,
}

/** A metadata value with its GGUF type spelled out, since JS numbers don't say. */
export type GgufValue =
  | { type: "u32"; value: number }
  | { type: "f32"; value: number }
  | { type: "bool"; value: boolean }
  | { type: "string"; value: string }
  | { type: "string[]"; value: readonly string[] }
  | { type: "f32[]"; value: readonly number[] }
  | { type: "i32[]"; value: readonly number[] };

export interface GgufTensor {
  name: string;
  /** ggml order: the first dimension varies fastest. */
  dims: readonly number[];
  /** Fills `out` with the elements starting at flat index `offset`; called in order. */
  fill(out: Float32Array, offset: number): void;
}

/** Collects bytes for the header, which is small enough to build in memory. */
class ByteSink {
  private readonly parts: Buffer[] = [];
  length = 0;

  push(buf: Buffer): void {
    this.parts.push(buf);
    this.length += buf.length;
  }
  u32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    this.push(b);
  }
  i32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeInt32LE(v);
    this.push(b);
  }
  u64(v: number): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    this.push(b);
  }
  f32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeFloatLE(v);
    this.push(b);
  }
  str(s: string): void {
    const bytes = Buffer.from(s, "utf8");
    this.u64(bytes.length);
    this.push(bytes);
  }
  toBuffer(): Buffer {
    return Buffer.concat(this.parts);
  }
}

function writeValue(sink: ByteSink, v: GgufValue): void {
  switch (v.type) {
    case "u32":
      sink.u32(ValueType.Uint32);
      sink.u32(v.value);
      return;
    case "f32":
      sink.u32(ValueType.Float32);
      sink.f32(v.value);
      return;
    case "bool":
      sink.u32(ValueType.Bool);
      sink.push(Buffer.from([v.value ? 1 : 0]));
      return;
    case "string":
      sink.u32(ValueType.String);
      sink.str(v.value);
      return;
    case "string[]":
      sink.u32(ValueType.Array);
      sink.u32(ValueType.String);
      sink.u64(v.value.length);
      for (const s of v.value) sink.str(s);
      return;
    case "f32[]":
      sink.u32(ValueType.Array);
      sink.u32(ValueType.Float32);
      sink.u64(v.value.length);
      for (const x of v.value) sink.f32(x);
      return;
    case "i32[]":
      sink.u32(ValueType.Array);
      sink.u32(ValueType.Int32);
      sink.u64(v.value.length);
      for (const x of v.value) sink.i32(x);
      return;
  }
}

const alignUp = (n: number): number => Math.ceil(n / ALIGNMENT) * ALIGNMENT;
const elementCount = (dims: readonly number[]): number => dims.reduce((a, b) => a * b, 1);

/** Writes a GGUF v3 file; returns its size in bytes. */
export function writeGguf(path: string, metadata: ReadonlyMap<string, GgufValue>, tensors: readonly GgufTensor[]): number {
  const header = new ByteSink();
  header.push(GGUF_MAGIC);
  header.u32(GGUF_VERSION);
  header.u64(tensors.length);
  header.u64(metadata.size);
  for (const [key, value] of metadata) {
    header.str(key);
    writeValue(header, value);
  }
  let dataOffset = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    header.str(t.name);
    header.u32(t.dims.length);
    for (const d of t.dims) header.u64(d);
    header.u32(GGML_TYPE_F32);
    header.u64(dataOffset);
    offsets.push(dataOffset);
    dataOffset = alignUp(dataOffset + elementCount(t.dims) * 4);
  }
  header.push(Buffer.alloc(alignUp(header.length) - header.length));

  const fd = openSync(path, "w");
  try {
    let written = writeSync(fd, header.toBuffer());
    const block = new Float32Array(1 << 16);
    tensors.forEach((t, i) => {
      const total = elementCount(t.dims);
      for (let done = 0; done < total; done += block.length) {
        const n = Math.min(block.length, total - done);
        const view = block.subarray(0, n);
        t.fill(view, done);
        written += writeSync(fd, new Uint8Array(view.buffer, view.byteOffset, n * 4));
      }
      const end = (i + 1 < tensors.length ? offsets[i + 1]! : alignUp(offsets[i]! + total * 4)) - offsets[i]! - total * 4;
      if (end > 0) written += writeSync(fd, Buffer.alloc(end));
    });
    return written;
  } finally {
    closeSync(fd);
  }
}
