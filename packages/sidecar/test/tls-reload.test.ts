// A renewed certificate served without a restart: on both servers, to new
// connections, while open streams go on; on demand (SIGHUP, reloadTls) and
// when the files change under a running sidecar; material that cannot serve
// refused with the old kept.
import { X509Certificate } from "node:crypto";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "node:tls";
import { fileURLToPath } from "node:url";
import { Microturn } from "@microturn/sdk";
import { afterEach, describe, expect, it } from "vitest";
import { startSidecar } from "../src/app.js";
import { ConfigError, loadConfig } from "../src/config.js";
import { createLogger } from "../src/logger.js";
import { SidecarMetrics } from "../src/metrics.js";
import { startServer } from "../src/server.js";
import { SessionHub } from "../src/session/session-hub.js";
import { loadTls } from "../src/tls.js";
import { FakeEngine } from "./helpers/fake-engine.js";
import { Started } from "./helpers/started.js";
import { say } from "./helpers/sdk-hello.js";
import { spawnTsx } from "./helpers/spawn-tsx.js";

const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/tls/${name}`, import.meta.url));
const pem = (name: string) => readFileSync(fixture(name));
const subjectOf = (name: string) => new X509Certificate(pem(name)).subject.replace(/^CN=/, "");
const FIRST = subjectOf("server.pem");
const RENEWED = subjectOf("server2.pem");
const port = (address: string) => Number(address.split(":").pop());

/** The common name of the certificate a fresh TLS connection to `address` is served. */
function servedName(address: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port: port(address), servername: "localhost", ca: pem("ca.pem"), ALPNProtocols: ["h2", "http/1.1"] }, () => {
      resolve(String(socket.getPeerCertificate().subject.CN));
      socket.destroy();
    });
    socket.on("error", reject);
  });
}

async function until(check: () => Promise<boolean>, ms = 5000): Promise<void> {
  for (const start = Date.now(); !(await check()); ) {
    if (Date.now() - start > ms) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 25));
  }
}

const started = new Started();
const sessions = started.sessions;
const dirs: string[] = [];

afterEach(async () => {
  await started.close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A folder holding server.pem / server.key as a deployment would, to be swapped for server2's. */
function tlsDir(): { dir: string; put(cert: string, key: string): void; write(name: string, content: Buffer | string): void } {
  const dir = mkdtempSync(join(tmpdir(), "microturn-tls-"));
  dirs.push(dir);
  const put = (cert: string, key: string) => {
    copyFileSync(fixture(cert), join(dir, "server.pem"));
    copyFileSync(fixture(key), join(dir, "server.key"));
  };
  put("server.pem", "server.key");
  return { dir, put, write: (name, content) => writeFileSync(join(dir, name), content) };
}

describe("TLS reload", () => {
  it("serves a renewed certificate on both servers to new connections; a stream already open goes on", async () => {
    const logger = createLogger("error");
    const hub = new SessionHub({ engine: new FakeEngine(), limits: { maxOutputTokensPerTurn: 32, maxQueuedChunks: 50 }, maxSessions: 8, resumeGraceMs: 5000, recordDir: "", logger });
    const tls = loadTls({ tlsCert: fixture("server.pem"), tlsKey: fixture("server.key"), tlsClientCa: "" })!;
    const running = (started.server = await startServer({ hub, logger, metrics: new SidecarMetrics(false), apiKey: "", tls, host: "127.0.0.1", port: 0, httpPort: 0, isServing: () => true }));
    const client = new Microturn({ url: `grpcs://localhost:${port(running.grpcAddress)}`, tls: { ca: pem("ca.pem") }, clock: "manual" });
    const before = client.session();
    sessions.push(before);
    await before.connect({ signal: AbortSignal.timeout(5000) });
    expect(await say(before, "one")).toBe("ONE");
    expect(await servedName(running.grpcAddress)).toBe(FIRST);
    expect(await servedName(running.httpAddress!)).toBe(FIRST);

    running.updateTls(loadTls({ tlsCert: fixture("server2.pem"), tlsKey: fixture("server2.key"), tlsClientCa: "" })!);
    expect(await servedName(running.grpcAddress)).toBe(RENEWED);
    expect(await servedName(running.httpAddress!)).toBe(RENEWED);
    expect(await say(before, "two")).toBe("TWO");
    const after = new Microturn({ url: `grpcs://localhost:${port(running.grpcAddress)}`, tls: { ca: pem("ca.pem") }, clock: "manual" }).session();
    sessions.push(after);
    await after.connect({ signal: AbortSignal.timeout(5000) });
    expect(await say(after, "three")).toBe("THREE");
  });

  it("refuses material that would turn mutual TLS on or off (a restart does that)", async () => {
    const logger = createLogger("error");
    const hub = new SessionHub({ engine: new FakeEngine(), limits: { maxOutputTokensPerTurn: 32, maxQueuedChunks: 50 }, maxSessions: 8, resumeGraceMs: 5000, recordDir: "", logger });
    const tls = loadTls({ tlsCert: fixture("server.pem"), tlsKey: fixture("server.key"), tlsClientCa: "" })!;
    const running = (started.server = await startServer({ hub, logger, metrics: new SidecarMetrics(false), apiKey: "", tls, host: "127.0.0.1", port: 0, httpPort: -1, isServing: () => true }));
    const mutual = loadTls({ tlsCert: fixture("server2.pem"), tlsKey: fixture("server2.key"), tlsClientCa: fixture("ca.pem") })!;
    expect(() => running.updateTls(mutual)).toThrow(ConfigError);
    expect(() => running.updateTls(mutual)).toThrow(/takes a restart/);
    expect(await servedName(running.grpcAddress)).toBe(FIRST);
  });

  it("picks up renewed files by itself, refuses a half-written pair and keeps serving the old one", async () => {
    const files = tlsDir();
    const flags = ["--port", "0", "--metrics-port", "0", "--background", "none", "--drain-ms", "0", "--tls-reload-ms", "100"];
    const sidecar = (started.sidecar = await startSidecar(loadConfig([...flags, "--tls-cert", join(files.dir, "server.pem"), "--tls-key", join(files.dir, "server.key")], {}), {
      engine: new FakeEngine(),
      logger: createLogger("error"),
    }));
    const grpcAddress = sidecar.server.grpcAddress;
    expect(sidecar.reloadTls()).toBe("unchanged");
    const metrics = () => sidecar.metrics.render();
    const expiry = new Date(new X509Certificate(pem("server.pem")).validTo).getTime() / 1000;
    expect(await metrics()).toMatch(new RegExp(`^microturn_tls_certificate_expiry_timestamp_seconds ${expiry}$`, "m"));

    // The renewed certificate landed, its key not yet: refused, the old pair still served.
    files.put("server2.pem", "server.key");
    expect(() => sidecar.reloadTls()).toThrow(/is not the key of the certificate/);
    expect(await servedName(grpcAddress)).toBe(FIRST);
    expect(await metrics()).toMatch(/^microturn_tls_reloads_total\{result="failed"\} [1-9]/m);

    // The key follows, but the chain is still being written (its second certificate cut short):
    // the leaf and key match, TLS cannot use the file, and the old pair stays served on both ports.
    files.put("server2.pem", "server2.key");
    files.write("server.pem", Buffer.concat([pem("server2.pem"), Buffer.from(pem("ca.pem").toString().slice(0, 120))]));
    expect(() => sidecar.reloadTls()).toThrow(/TLS cannot use them/);
    expect(await servedName(grpcAddress)).toBe(FIRST);
    expect(await servedName(sidecar.server.httpAddress!)).toBe(FIRST);

    // The chain is whole: the next check serves the pair, no signal needed.
    files.put("server2.pem", "server2.key");
    await until(async () => (await servedName(grpcAddress)) === RENEWED);
    expect(await servedName(sidecar.server.httpAddress!)).toBe(RENEWED);
    expect(await metrics()).toMatch(/^microturn_tls_reloads_total\{result="ok"\} 1$/m);
    const renewedExpiry = new Date(new X509Certificate(pem("server2.pem")).validTo).getTime() / 1000;
    expect(await metrics()).toMatch(new RegExp(`^microturn_tls_certificate_expiry_timestamp_seconds ${renewedExpiry}$`, "m"));
    expect(sidecar.reloadTls()).toBe("unchanged");
  });

  it("says TLS is off when there is nothing to reload", async () => {
    const sidecar = (started.sidecar = await startSidecar(loadConfig(["--port", "0", "--metrics-port=-1", "--background", "none", "--drain-ms", "0"], {}), { engine: new FakeEngine(), logger: createLogger("error") }));
    expect(sidecar.reloadTls()).toBe("off");
  });

  it("microturn serve reloads on SIGHUP", async () => {
    const files = tlsDir();
    const cli = fileURLToPath(new URL("../src/cli.ts", import.meta.url));
    const args = ["serve", "--engine", "echo", "--port", "0", "--metrics-port=-1", "--tls-reload-ms", "0", "--tls-cert", join(files.dir, "server.pem"), "--tls-key", join(files.dir, "server.key")];
    const run = spawnTsx(cli, args);
    const { child, exited } = run;
    try {
      await until(async () => /grpc=\S+/.test(run.stdout), 20_000);
      const grpcAddress = /grpc=(\S+)/.exec(run.stdout)![1]!;
      expect(run.stdout).toContain("tls=tls");
      expect(await servedName(grpcAddress)).toBe(FIRST);
      child.kill("SIGHUP");
      await until(async () => run.stderr.includes("the TLS files are unchanged"));
      files.put("server2.pem", "server2.key");
      child.kill("SIGHUP");
      await until(async () => run.stderr.includes("TLS reloaded"));
      expect(await servedName(grpcAddress)).toBe(RENEWED);
      // A SIGHUP while it drains (a certificate hook, say) does not end the drain.
      child.kill("SIGTERM");
      child.kill("SIGHUP");
      expect(await exited).toBe(0);
    } finally {
      child.kill("SIGKILL");
    }
  }, 30_000);
});
