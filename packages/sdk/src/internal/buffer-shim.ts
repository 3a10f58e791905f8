// Injected as `Buffer` into the browser bundle only (see tsup.config.ts): the
// generated codec wraps bytes fields in Buffer (ts-proto env=node), and a
// Uint8Array is all the protobuf runtime needs.
interface BufferLike {
  from(value: Uint8Array | ArrayLike<number> | string, encoding?: string): Uint8Array;
  alloc(size: number): Uint8Array;
  isBuffer(value: unknown): boolean;
}

const shim: BufferLike = {
  from(value, encoding) {
    if (typeof value === "string") {
      if (encoding !== "base64") return new TextEncoder().encode(value);
      const binary = globalThis.atob(value);
      return Uint8Array.from(binary, (c) => c.charCodeAt(0));
    }
    return Uint8Array.from(value as ArrayLike<number>);
  },
  alloc: (size) => new Uint8Array(size),
  isBuffer: () => false,
};

export const Buffer: BufferLike = (globalThis as { Buffer?: BufferLike }).Buffer ?? shim;
