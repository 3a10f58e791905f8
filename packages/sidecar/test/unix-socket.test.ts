// gRPC on a Unix socket beside the TCP port (--socket): the SDK over
// unix:///path, the API key still asked, the file's mode, and a path that is
// taken (a live sidecar's socket, a plain file) refused while a stale socket
// left by a crash is replaced.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Microturn, type InteractionSession } from "@microturn/sdk";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { ConfigError } from "../src/config.js";
import { createLogger } from "../src/logger.js";
import { SidecarMetrics } from "../src/metrics.js";
import { startServer, type RunningServer } from "../src/server.js";
import { SessionHub } from "../src/session/session-hub.js";
import { FakeEngine } from "./helpers/fake-engine.js";
import { hello } from "./helpers/sdk-hello.js";
import { spawnTsx } from "./helpers/spawn-tsx.js";

const running: RunningServer[] = [];
const sessions: InteractionSession[] = [];
let dir = "";

afterEach(async () => {
  for (const s of sessions.splice(0)) await s.close().catch(() => undefined);
  for (const r of running.splice(0)) await r.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = "";
});

async function serve(socketPath: string, apiKey = ""): Promise<RunningServer> {
  const logger = createLogger("error");
  const hub = new SessionHub({ engine: new FakeEngine(), limits: { maxOutputTokensPerTurn: 32, maxQueuedChunks: 50 }, maxSessions: 8, resumeGraceMs: 5000, recordDir: "", logger });
  const server = await startServer({ hub, logger, metrics: new SidecarMetrics(false), apiKey, host: "127.0.0.1", port: 0, socketPath, httpPort: -1, isServing: () => true });
  running.push(server);
  return server;
}

describe("Unix socket", () => {
  it("serves Converse over unix:///path beside the TCP port, with the API key, to the owner and group only", async () => {
    dir = mkdtempSync(join(tmpdir(), "microturn-sock-"));
    const path = join(dir, "sidecar.sock");
    const server = await serve(path, "sekret");
    expect(server.socketPath).toBe(path);
    expect(statSync(path).mode & 0o777).toBe(0o660);
    expect(await hello(new Microturn({ url: `unix://${path}`, apiKey: "sekret", clock: "manual" }), sessions)).toBe("HELLO");
    expect(await hello(new Microturn({ url: `grpc://${server.grpcAddress}`, apiKey: "sekret", clock: "manual" }), sessions)).toBe("HELLO");
    const keyless = new Microturn({ url: `unix:${path}`, clock: "manual" }).session();
    sessions.push(keyless);
    await expect(keyless.connect({ signal: AbortSignal.timeout(5000) })).rejects.toMatchObject({ name: "UnauthenticatedError" });
    // The socket file goes with the server.
    for (const session of sessions.splice(0)) await session.close();
    await server.close();
    running.splice(0);
    expect(() => statSync(path)).toThrow(/ENOENT/);
  });

  it("replaces a stale socket, refuses one another process serves on and a file that is no socket", async () => {
    dir = mkdtempSync(join(tmpdir(), "microturn-sock-"));
    // A socket a crashed process left: the file is there, nothing listens on it.
    const stalePath = join(dir, "stale.sock");
    const crashing = spawn(process.execPath, ["-e", `require("node:net").createServer().listen(${JSON.stringify(stalePath)}, () => console.log("up"))`], { stdio: ["ignore", "pipe", "inherit"] });
    await new Promise((resolve) => crashing.stdout!.once("data", resolve));
    crashing.kill("SIGKILL");
    await new Promise((resolve) => crashing.once("exit", resolve));
    expect(statSync(stalePath).isSocket()).toBe(true);
    const server = await serve(stalePath);
    expect(await hello(new Microturn({ url: `unix://${server.socketPath}`, clock: "manual" }), sessions)).toBe("HELLO");

    const livePath = join(dir, "live.sock");
    const live = createServer();
    await new Promise<void>((resolve) => live.listen(livePath, resolve));
    try {
      await expect(serve(livePath)).rejects.toThrow(ConfigError);
      await expect(serve(livePath)).rejects.toThrow(/another process serves on it/);
    } finally {
      await new Promise<void>((resolve) => live.close(() => resolve()));
    }

    const filePath = join(dir, "not-a-socket");
    writeFileSync(filePath, "data");
    await expect(serve(filePath)).rejects.toThrow(/not a socket/);
  });

  it("microturn serve --socket says so in its ready line and removes the socket when it stops", async () => {
    dir = mkdtempSync(join(tmpdir(), "microturn-sock-"));
    const path = join(dir, "sidecar.sock");
    const cli = fileURLToPath(new URL("../src/cli.ts", import.meta.url));
    const run = spawnTsx(cli, ["serve", "--engine", "echo", "--port", "0", "--metrics-port=-1", "--socket", path]);
    try {
      for (let waited = 0; !/grpc=\S+/.test(run.stdout) && waited < 20_000; waited += 50) await new Promise((r) => setTimeout(r, 50));
      expect(run.stdout, run.stderr).toContain(`socket=${path}`);
      expect(await hello(new Microturn({ url: `unix://${path}`, clock: "manual" }), sessions)).toBe("hello");
      for (const session of sessions.splice(0)) await session.close();
      run.child.kill("SIGTERM");
      expect(await run.exited).toBe(0);
      expect(() => statSync(path)).toThrow(/ENOENT/);
    } finally {
      run.child.kill("SIGKILL");
    }
  }, 30_000);
});
