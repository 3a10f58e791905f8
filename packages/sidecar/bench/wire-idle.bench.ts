// npm run bench:wire — where the time of one chunk's round trip goes when the
// chunks come 200 ms apart (a real-time session) rather than back to back.
//
// One client, one server in its own process, a round trip each time: send a
// message, wait for the first byte of the answer. Servers that each add a
// layer over the one before:
//   tcp      node:net echo
//   http2    node:http2, a POST stream echoing each DATA frame
//   grpc-js  a grpc-js bidi stream echoing each message (no protobuf)
//   floor    the bench:sidecar floor: the Converse service on grpc-js with
//            protobuf and the echo engine, no session logic
//   sidecar  microturn serve --engine echo
//   spinning the same with --spin-window-ms=2: awake around each chunk's due
//            time rather than asleep until the chunk wakes it
//   socket   the sidecar again, reached over its Unix socket (--socket)
//            rather than loopback TCP
// (the sidecars and the floor answer an InputChunk with an InputAck; the round trip ends at
// its first byte, and the turn's OutputChunk is let pass, untimed, before the
// next). Each is measured back to back and at a 200 ms pace, in
// rounds that alternate the servers. The gap between the two paces is what a
// process pays to wake up cold; bench:sidecar's target compares the sidecar
// with an in-process call, which pays none of these layers.
import type { ChildProcess } from "node:child_process";
import { connect as netConnect, createServer as netServer } from "node:net";
import { connect as h2Connect, createServer as h2Server } from "node:http2";
import { setTimeout as sleep } from "node:timers/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import { ClientEvent, PROTOCOL_VERSION } from "@microturn/protocol";
import { encodeClientEvent, grpcFrame } from "./lean-client.js";
import { floorArgv, sidecarArgv, startServerProcess } from "./server-process.js";
import { benchArgs } from "./args.js";

const args = benchArgs();
const ROUNDS = Number(args.get("rounds") ?? 2);
const PACED = Number(args.get("paced") ?? 50);
const BACK_TO_BACK = Number(args.get("back-to-back") ?? 500);
const ALL_LAYERS = ["tcp", "http2", "grpc-js", "floor", "sidecar", "spinning", "socket"] as const;
type Layer = (typeof ALL_LAYERS)[number];
/** Which servers run (--layers=floor,sidecar,spinning, say); all by default. */
const LAYERS = ALL_LAYERS.filter((l) => (args.get("layers") ?? ALL_LAYERS.join(",")).split(",").includes(l));

// --- the servers, when this file runs as one (`--serve=<layer>`) ---

function serve(layer: Layer): void {
  const ready = (port: number) => console.log(`ready grpc=127.0.0.1:${port}`);
  if (layer === "tcp") {
    const server = netServer((socket) => {
      socket.setNoDelay(true);
      socket.on("data", (d) => socket.write(d));
    });
    server.listen(0, "127.0.0.1", () => ready((server.address() as { port: number }).port));
  } else if (layer === "http2") {
    const server = h2Server();
    server.on("stream", (stream) => {
      stream.respond({ ":status": 200, "content-type": "application/grpc" });
      stream.on("data", (d: Buffer) => stream.write(d));
    });
    server.listen(0, "127.0.0.1", () => ready((server.address() as { port: number }).port));
  } else if (layer === "grpc-js") {
    const raw = (b: Buffer) => b;
    const service = { echo: { path: "/bench.Wire/Echo", requestStream: true, responseStream: true, requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw } };
    const server = new grpc.Server();
    server.addService(service, {
      echo(call: grpc.ServerDuplexStream<Buffer, Buffer>) {
        call.on("data", (d: Buffer) => call.write(d));
        call.on("end", () => call.end());
      },
    } as unknown as grpc.UntypedServiceImplementation);
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, port) => {
      if (err) throw err;
      ready(port);
    });
  }
}

// --- the client ---

/** Where the socket layer's sidecar listens. */
const SOCKET_PATH = join(tmpdir(), `microturn-bench-wire-${process.pid}.sock`);

async function start(layer: Layer): Promise<{ child: ChildProcess; port: number }> {
  const argv =
    layer === "floor"
      ? floorArgv()
      : layer === "sidecar" || layer === "spinning" || layer === "socket"
        ? sidecarArgv(["--log-level", "warn", ...(layer === "spinning" ? ["--spin-window-ms=2"] : layer === "socket" ? ["--socket", SOCKET_PATH] : [])])
        : [...selfArgv(), `--serve=${layer}`];
  const { child, address } = await startServerProcess(argv);
  return { child, port: Number(address.split(":").pop()) };
}

/** This file as a node argv: through tsx from the source tree, as is from a bundle (scripts/bundle-sidecar-bench.mjs). */
function selfArgv(): string[] {
  const self = fileURLToPath(import.meta.url);
  return self.endsWith(".ts") ? ["--import", "tsx", self] : [self];
}

interface Link {
  /** Sends message `i`; resolves at the first byte of the answer. */
  roundTrip(i: number): Promise<void>;
  /** Waits, untimed, for what else the message brings (a Converse turn's OutputChunk). */
  settle?(): Promise<void>;
  close(): void;
}

async function link(layer: Layer, port: number, messages: number): Promise<Link> {
  let answered: (() => void) | undefined;
  const onData = () => {
    const r = answered;
    answered = undefined;
    r?.();
  };
  const roundTrip = (send: () => void) => new Promise<void>((resolve) => ((answered = resolve), send()));
  if (layer === "tcp") {
    const socket = netConnect(port, "127.0.0.1");
    socket.setNoDelay(true);
    await new Promise((r) => socket.once("connect", r));
    socket.on("data", onData);
    const payload = Buffer.alloc(45, 1);
    return { roundTrip: () => roundTrip(() => socket.write(payload)), close: () => socket.destroy() };
  }
  const session = layer === "socket" ? h2Connect("http://localhost", { createConnection: () => netConnect(SOCKET_PATH) }) : h2Connect(`http://127.0.0.1:${port}`);
  session.on("error", () => undefined);
  const path = layer === "http2" || layer === "grpc-js" ? "/bench.Wire/Echo" : "/microturn.v1.Interaction/Converse";
  const stream = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers" }, { endStream: false });
  stream.on("error", () => undefined);
  stream.on("data", onData);
  const close = () => {
    stream.close();
    session.close();
  };
  if (layer === "http2" || layer === "grpc-js") {
    const payload = grpcFrame(Buffer.alloc(40, 1));
    return { roundTrip: () => roundTrip(() => stream.write(payload)), close };
  }
  // Converse: start a session (its Started answers), then one InputChunk per round trip, encoded ahead.
  const config = { maxOutputTokensPerTurn: 4 };
  await roundTrip(() => stream.write(encodeClientEvent(ClientEvent.fromPartial({ event: { $case: "start", value: { protocolVersion: PROTOCOL_VERSION, config } } }))));
  const frames = Array.from({ length: messages }, (_, seq) =>
    encodeClientEvent(ClientEvent.fromPartial({ event: { $case: "input", value: { seq, startMs: seq * 200, durationMs: 200, text: "hello there", userSpeaking: true } } })),
  );
  return {
    roundTrip: (i) => roundTrip(() => stream.write(frames[i]!)),
    // The turn's OutputChunk follows the ack: it passes before the next round trip.
    settle: () => sleep(3),
    close,
  };
}

const quantile = (samples: number[], q: number) => [...samples].sort((a, b) => a - b)[Math.min(samples.length - 1, Math.floor(samples.length * q))]!;

async function main(): Promise<void> {
  console.log(`bench:wire — round trip to the first byte of the answer, back to back (${BACK_TO_BACK}) and every 200 ms (${PACED}), ${ROUNDS} rounds (node ${process.version})`);
  const results = new Map<Layer, { tight: number[]; paced: number[] }>(LAYERS.map((l) => [l, { tight: [], paced: [] }]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const layer of LAYERS) {
      const { child, port } = await start(layer);
      const wire = await link(layer, port, BACK_TO_BACK + PACED + 100);
      let i = 0;
      for (let w = 0; w < 100; w++) {
        await wire.roundTrip(i++); // warm
        await wire.settle?.();
      }
      const r = results.get(layer)!;
      for (let n = 0; n < BACK_TO_BACK; n++) {
        const t = performance.now();
        await wire.roundTrip(i++);
        r.tight.push(performance.now() - t);
        await wire.settle?.();
      }
      for (let n = 0; n < PACED; n++) {
        await sleep(200);
        const t = performance.now();
        await wire.roundTrip(i++);
        r.paced.push(performance.now() - t);
        await wire.settle?.();
      }
      wire.close();
      child.kill("SIGTERM");
    }
  }
  const fmt = (n: number) => n.toFixed(3).padStart(7);
  console.log(`${"layer".padEnd(8)}  back to back p50     p90 | every 200 ms p50     p90     p99`);
  const json: Record<string, Record<string, number>> = {};
  for (const layer of LAYERS) {
    const { tight, paced } = results.get(layer)!;
    const row = { tight_p50: quantile(tight, 0.5), tight_p90: quantile(tight, 0.9), paced_p50: quantile(paced, 0.5), paced_p90: quantile(paced, 0.9), paced_p99: quantile(paced, 0.99) };
    json[layer] = Object.fromEntries(Object.entries(row).map(([k, v]) => [k, Number(v.toFixed(3))]));
    console.log(`${layer.padEnd(8)}  ${fmt(row.tight_p50)} ${fmt(row.tight_p90)} ms | ${fmt(row.paced_p50)} ${fmt(row.paced_p90)} ${fmt(row.paced_p99)} ms`);
  }
  console.log(JSON.stringify({ bench: "wire", rounds: ROUNDS, ms: json }));
}

const serveArg = args.get("serve");
if (serveArg) serve(serveArg as Layer);
else
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
