// The built browser bundle (dist/browser.js) has no grpc-js import and runs a
// session with no global Buffer. Needs `npm run build -w @microturn/sdk` first.
import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { WebSocketServer } from "ws";
import { bytesToInt16 } from "../src/internal/pcm.js";
import { startFakeSidecar } from "../src/testing/fake-sidecar.js";

const bundle = fileURLToPath(new URL("../dist/browser.js", import.meta.url));
const client = fileURLToPath(new URL("./fixtures/browser-client.mjs", import.meta.url));
const built = existsSync(bundle);

describe.skipIf(!built)("browser bundle (dist/browser.js)", () => {
  it("imports nothing from grpc-js", () => {
    const source = readFileSync(bundle, "utf8");
    expect(source).not.toMatch(/@grpc\/grpc-js/);
    expect(source).toMatch(/WebSocketTransport = class|class WebSocketTransport/);
  });

  it("runs a session over WebSocket without a global Buffer", async () => {
    const fake = await startFakeSidecar({ webSocketServer: WebSocketServer, apiKey: "k1" });
    try {
      const { stdout } = await promisify(execFile)(process.execPath, [client, bundle, fake.wsUrl], { timeout: 20_000 });
      expect(JSON.parse(stdout).texts).toEqual(["echo: from the bundle"]);
      const chunk = fake.session().chunks[0]!;
      expect(Array.from(bytesToInt16(chunk.pcm!.pcm16).subarray(0, 3))).toEqual([9, 9, 9]);
    } finally {
      await fake.close();
    }
  });
});
