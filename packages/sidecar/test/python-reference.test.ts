// The sglang-grpc engine adapter against the real Python side: sglang-patch's
// CPU reference server (tiny random interaction model, same session
// bookkeeping as the SGLang patch) over real gRPC, all modalities. Then a
// whole sidecar on top of it, so app ⇄ sidecar ⇄ Python engine is one path.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { Modality, OutputMode } from "@microturn/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSidecar } from "../src/app.js";
import { loadConfig } from "../src/config.js";
import type { Engine } from "../src/engines/engine.js";
import { EngineError } from "../src/engines/errors.js";
import { createEngine } from "../src/engines/registry.js";
import { createLogger } from "../src/logger.js";
import { TestClient } from "./helpers/test-client.js";

const root = join(__dirname, "../../..");
const python = join(root, ".venv/bin/python");
const available = existsSync(python);

let server: ChildProcess | undefined;
let address = "";
let engine: Engine | undefined;

beforeAll(async () => {
  if (!available) return;
  server = spawn(python, ["-m", "microturn_sglang.reference_server", "--host", "127.0.0.1", "--port", "0"], {
    cwd: join(root, "sglang-patch"),
    stdio: ["ignore", "pipe", "inherit"],
  });
  address = await new Promise<string>((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`reference server not ready: ${out}`)), 90_000);
    server!.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const match = /listening on (\S+)/.exec(out);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
    server!.once("exit", (code) => reject(new Error(`reference server exited with ${code}`)));
  });
  engine = await createEngine({ engine: "sglang-grpc", engineUrl: address });
}, 120_000);

afterAll(async () => {
  await engine?.dispose();
  server?.kill("SIGTERM");
});

const chunk = (seq: number, extra: object = {}) => ({ seq, startMs: seq * 200, durationMs: 200, text: "", ...extra });

describe.skipIf(!available)("sglang-grpc engine ⇄ Python reference server (.venv from npm run test:py)", () => {
  it("reports the reference model's capabilities: every modality, rewind", () => {
    const caps = engine!.capabilities;
    expect(caps.engine).toBe("sglang-grpc");
    expect(caps.inputModalities).toEqual(expect.arrayContaining([Modality.MODALITY_TEXT, Modality.MODALITY_AUDIO, Modality.MODALITY_VIDEO]));
    expect(caps.supportsRewind).toBe(true);
    expect(caps.randomWeights).toBe(true);
  });

  it("appends text, dMel audio and patches without re-prefill, rewinds and closes", async () => {
    const session = await engine!.openSession({ systemPrompt: "hi", capacityTokens: 256 });
    const start = session.positionTokens;
    const dmel = { frames: 16, channels: 80, codes: new Uint8Array(16 * 80).fill(5) };
    const patches = [{ patchSizePx: 40, rows: 1, cols: 2, rgb: new Uint8Array(2 * 40 * 40 * 3).fill(100), offsetMs: 0 }];
    const positions: number[] = [start];
    for (const [seq, extra] of [
      [0, { text: "hello" }],
      [1, { audio: dmel }],
      [2, { video: patches }],
    ] as const) {
      let done;
      for await (const out of session.append(chunk(seq, extra), { maxOutputTokens: 3 })) if (out.type === "done") done = out.done;
      expect(done).toBeDefined();
      // The input went on top of the previous end: nothing was recomputed.
      expect(done!.inputEndTokens - done!.inputTokens).toBe(positions[positions.length - 1]);
      expect(done!.positionTokens).toBe(done!.inputEndTokens + done!.outputTokens);
      positions.push(done!.positionTokens);
    }
    expect(session.positionTokens).toBe(positions[3]);
    expect(await session.rewind(positions[1]!)).toBe(positions[1]);
    await expect(session.rewind(positions[3]! + 100)).rejects.toSatisfy((e: unknown) => EngineError.isInstance(e) && e.code === "rewind_out_of_range");
    await session.close();
    await expect(drain(session.append(chunk(3, { text: "x" }), { maxOutputTokens: 1 }))).rejects.toSatisfy((e: unknown) => EngineError.isInstance(e));
  });

  it("serves a whole sidecar session: app ⇄ sidecar ⇄ Python engine", async () => {
    const sidecar = await startSidecar(loadConfig(["--engine", "sglang-grpc", "--engine-url", address, "--port", "0", "--metrics-port=-1", "--background", "none", "--drain-ms", "0"], {}), {
      logger: createLogger("error"),
    });
    const client = new TestClient(sidecar.server.grpcAddress);
    try {
      client.start();
      client.input(0, "hello");
      client.input(1, "", { pcm: { sampleRateHz: 16000, channels: 1, pcm16: new Uint8Array(6400) } } as never);
      client.input(2, "", { frames: [{ widthPx: 80, heightPx: 40, rgb: new Uint8Array(80 * 40 * 3), offsetMs: 0 }] } as never);
      await client.waitCount("output", 3, 60_000);
      expect(client.of("output").map((o) => o.seq)).toEqual([0, 1, 2]);
      expect(client.of("error")).toEqual([]);
    } finally {
      client.close();
      await sidecar.shutdown();
    }
  }, 90_000);
});

describe.skipIf(!available)("a speaking session: app ⇄ sidecar ⇄ Python engine's flow head and vocoder", () => {
  it("reports audio output, and each micro-turn's output carries the reference engine's speech, timed by it", async () => {
    expect(engine!.capabilities.outputModalities).toEqual(expect.arrayContaining([Modality.MODALITY_TEXT, Modality.MODALITY_AUDIO]));
    const sidecar = await startSidecar(loadConfig(["--engine", "sglang-grpc", "--engine-url", address, "--port", "0", "--metrics-port=-1", "--background", "none", "--drain-ms", "0", "--max-output-tokens", "8"], {}), {
      logger: createLogger("error"),
    });
    const client = new TestClient(sidecar.server.grpcAddress);
    try {
      client.start({ outputMode: OutputMode.OUTPUT_MODE_AUDIO, outputSampleRateHz: 24000 });
      for (let seq = 0; seq < 6; seq++) client.input(seq, seq === 0 ? "hello" : "");
      await client.waitCount("output", 6, 60_000);
      expect(client.of("error")).toEqual([]);
      const spoken = client.of("output").filter((o) => !o.silent);
      expect(spoken.length).toBeGreaterThan(0);
      for (const out of spoken) {
        // A random-weight model may end its turn with no text but still speak; whatever it said is audio at 24 kHz.
        expect(out.audio).toMatchObject({ sampleRateHz: 24000, channels: 1 });
        const samples = out.audio!.pcm16.length / 2;
        expect(samples).toBeGreaterThan(0);
        expect(out.durationMs).toBe(Math.round((samples / 24000) * 1000));
        // At most the budget, 8 tokens of 12.5 ms, the vocoder's 37.5 ms tail when the model ends its turn, and the few ms the resampler held back from the turn before.
        expect(out.durationMs).toBeLessThanOrEqual(8 * 12.5 + 37.5 + 5);
      }
    } finally {
      client.close();
      await sidecar.shutdown();
    }
  }, 90_000);
});

async function drain(iterable: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of iterable) void _;
}
