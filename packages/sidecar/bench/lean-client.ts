// The load generator's Converse client for bench:sidecar: real gRPC over
// node:http2 (length-prefixed protobuf messages on a POST stream), with each
// tick's ClientEvent encoded once for every session and server events read
// only as far as their case and seq. Thousands of sessions then cost this
// process a fraction of what grpc-js clients cost, so a load generator that
// shares the sidecar's two cores takes less of them and pauses less for its
// own garbage collection (both land in the measured latency).
import { connect, type ClientHttp2Session } from "node:http2";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { ClientEvent } from "@microturn/protocol";

/** One gRPC message: compressed flag 0, big-endian length, the bytes. */
export function grpcFrame(message: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(5 + message.byteLength);
  frame[0] = 0;
  frame.writeUInt32BE(message.byteLength, 1);
  frame.set(message, 5);
  return frame;
}

export const encodeClientEvent = (event: ClientEvent): Buffer => grpcFrame(ClientEvent.encode(event).finish());

/** Splits a stream of gRPC frames into messages, whatever the chunking. */
export class FrameReader {
  private pending: Buffer | undefined;

  push(chunk: Buffer, onMessage: (message: Buffer) => void): void {
    let data = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = undefined;
    while (data.length >= 5) {
      if (data[0] !== 0) throw new Error("compressed gRPC message: the lean client asks for none");
      const length = data.readUInt32BE(1);
      if (data.length < 5 + length) break;
      onMessage(data.subarray(5, 5 + length));
      data = data.subarray(5 + length);
    }
    if (data.length > 0) this.pending = data;
  }
}

/** ServerEvent's oneof field numbers (interaction.proto). */
export const EVENT = { started: 2, output: 3, inputAck: 4, error: 7 } as const;

/**
 * A ServerEvent's case (its oneof field number, 0 when none) and, for output
 * and inputAck, the seq it answers (field 1 of both), without decoding the rest.
 */
export function peekServerEvent(message: Uint8Array): { field: number; seq: number } {
  const reader = new BinaryReader(message);
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 1 || wireType !== WireType.LengthDelimited) {
      reader.skip(wireType, field);
      continue;
    }
    const body = new BinaryReader(reader.bytes());
    let seq = 0;
    while (body.pos < body.len) {
      const [innerField, innerType] = body.tag();
      if (innerField === 1 && innerType === WireType.Varint) {
        seq = Number(body.uint64());
        break;
      }
      body.skip(innerType, innerField);
    }
    return { field, seq };
  }
  return { field: 0, seq: 0 };
}

export interface LeanStream {
  write(frame: Buffer): void;
  /** Half-closes and resolves when the server ended the stream (or after `timeoutMs`). */
  end(timeoutMs: number): Promise<void>;
}

/** A few HTTP/2 connections to one address, Converse streams spread over them. */
export class LeanConverseClient {
  private readonly sessions: ClientHttp2Session[];
  private next = 0;

  constructor(address: string, connections: number) {
    this.sessions = Array.from({ length: connections }, () => {
      const session = connect(`http://${address}`);
      session.on("error", () => undefined);
      return session;
    });
  }

  open(onEvent: (field: number, seq: number) => void): LeanStream {
    const session = this.sessions[this.next++ % this.sessions.length]!;
    const stream = session.request({ ":method": "POST", ":path": "/microturn.v1.Interaction/Converse", "content-type": "application/grpc", te: "trailers" });
    const reader = new FrameReader();
    stream.on("data", (chunk: Buffer) =>
      reader.push(chunk, (message) => {
        const { field, seq } = peekServerEvent(message);
        onEvent(field, seq);
      }),
    );
    stream.on("error", () => undefined);
    const closed = new Promise<void>((resolve) => stream.once("close", resolve));
    return {
      write: (frame) => void stream.write(frame),
      end: async (timeoutMs) => {
        stream.end();
        await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, timeoutMs))]);
      },
    };
  }

  close(): void {
    for (const session of this.sessions) session.close();
  }
}
