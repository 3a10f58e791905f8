// TLS on both of the sidecar's servers: the SDK over grpcs:// with a private
// CA, mutual TLS, WebSocket over wss:// and /healthz over https://, and the
// config and file checks that refuse to start with TLS material that cannot serve.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { get } from "node:https";
import { fileURLToPath } from "node:url";
import { Microturn, type InteractionSession } from "@microturn/sdk";
import { afterEach, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { ConfigError, loadConfig } from "../src/config.js";
import { createLogger } from "../src/logger.js";
import { SidecarMetrics } from "../src/metrics.js";
import { startServer, type RunningServer } from "../src/server.js";
import { SessionHub } from "../src/session/session-hub.js";
import { loadTls } from "../src/tls.js";
import { FakeEngine } from "./helpers/fake-engine.js";
import { hello } from "./helpers/sdk-hello.js";

const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/tls/${name}`, import.meta.url));
const pem = (name: string) => readFileSync(fixture(name));

let running: RunningServer | undefined;
const sessions: InteractionSession[] = [];

async function setup(mutual = false) {
  const engine = new FakeEngine();
  const logger = createLogger("error");
  const hub = new SessionHub({ engine, limits: { maxOutputTokensPerTurn: 32, maxQueuedChunks: 50 }, maxSessions: 8, resumeGraceMs: 5000, recordDir: "", logger });
  const tls = loadTls({ tlsCert: fixture("server.pem"), tlsKey: fixture("server.key"), tlsClientCa: mutual ? fixture("ca.pem") : "" })!;
  running = await startServer({ hub, logger, metrics: new SidecarMetrics(false), apiKey: "", tls, host: "127.0.0.1", port: 0, httpPort: 0, isServing: () => true });
  const port = (address: string) => address.split(":").pop()!;
  return { engine, server: running, grpcPort: port(running.grpcAddress), httpPort: port(running.httpAddress!) };
}

afterEach(async () => {
  for (const s of sessions.splice(0)) await s.close().catch(() => undefined);
  await running?.close();
  running = undefined;
});

describe("TLS", () => {
  it("serves the SDK over grpcs:// to a client that trusts the CA", async () => {
    const { server, grpcPort } = await setup();
    expect(server.tls).toBe("tls");
    const client = new Microturn({ url: `grpcs://localhost:${grpcPort}`, tls: { ca: pem("ca.pem") }, clock: "manual" });
    expect(await hello(client, sessions)).toBe("HELLO");
  });

  it("is refused by a plaintext client and by one that does not trust the CA", async () => {
    const { grpcPort } = await setup();
    const plaintext = new Microturn({ url: `grpc://localhost:${grpcPort}`, clock: "manual" });
    const untrusting = new Microturn({ url: `grpcs://localhost:${grpcPort}`, clock: "manual" }); // the system's roots only
    for (const client of [plaintext, untrusting]) {
      const session = client.session();
      sessions.push(session);
      await expect(session.connect({ signal: AbortSignal.timeout(5000) })).rejects.toMatchObject({ name: "UnavailableError" });
    }
  });

  it("with a client CA, takes only clients that present a certificate it signed", async () => {
    const { server, grpcPort } = await setup(true);
    expect(server.tls).toBe("mtls");
    const anonymous = new Microturn({ url: `grpcs://localhost:${grpcPort}`, tls: { ca: pem("ca.pem") }, clock: "manual" }).session();
    sessions.push(anonymous);
    await expect(anonymous.connect({ signal: AbortSignal.timeout(5000) })).rejects.toMatchObject({ name: "UnavailableError", message: expect.stringMatching(/certificate required/) });
    const client = new Microturn({ url: `grpcs://localhost:${grpcPort}`, tls: { ca: pem("ca.pem"), cert: pem("client.pem"), key: pem("client.key") }, clock: "manual" });
    expect(await hello(client, sessions)).toBe("HELLO");
  });

  it("with a client CA, answers /healthz to anyone (probes) and the rest of the HTTP port only with a certificate", async () => {
    const { httpPort } = await setup(true);
    const request = (path: string, cert = false) =>
      new Promise<{ status: number; body: string }>((resolve, reject) =>
        get({ host: "localhost", port: httpPort, path, ca: pem("ca.pem"), ...(cert ? { cert: pem("client.pem"), key: pem("client.key") } : {}) }, (res) => {
          let body = "";
          res.on("data", (d: Buffer) => (body += d.toString()));
          res.on("end", () => resolve({ status: res.statusCode!, body }));
        }).on("error", reject),
      );
    // A probe learns that the sidecar serves, not how many sessions it holds.
    expect(await request("/healthz")).toEqual({ status: 200, body: JSON.stringify({ serving: true }) });
    expect(JSON.parse((await request("/healthz", true)).body)).toEqual({ serving: true, sessions: 0 });
    expect((await request("/metrics")).status).toBe(403);
    expect((await request("/metrics", true)).status).toBe(200);
    // Over the SDK with a client certificate, the same WebSocket gets in.
    const withCert = new Microturn({ url: `wss://localhost:${httpPort}`, clock: "manual", WebSocket: WebSocket as never, tls: { ca: pem("ca.pem"), cert: pem("client.pem"), key: pem("client.key") } });
    expect(await hello(withCert, sessions)).toBe("HELLO");
    const refused = await new Promise<string>((resolve) => {
      const ws = new WebSocket(`wss://localhost:${httpPort}/v1/converse`, "microturn.v1", { ca: pem("ca.pem") });
      ws.on("unexpected-response", (_req, res) => resolve(String(res.statusCode)));
      ws.on("close", (code, reason) => resolve(`${code} ${reason.toString()}`));
      ws.on("error", (err) => resolve(err.message));
    });
    // Closed with PERMISSION_DENIED's code after the handshake: a browser would see only 1006 for a refused upgrade.
    expect(refused).toMatch(/^4007 client certificate required/);
  });

  it("serves /healthz over https:// and Converse over wss:// on the HTTP port", async () => {
    const { httpPort } = await setup();
    const health = await new Promise<{ status: number; body: string }>((resolve, reject) =>
      get({ host: "localhost", port: httpPort, path: "/healthz", ca: pem("ca.pem") }, (res) => {
        let body = "";
        res.on("data", (d: Buffer) => (body += d.toString()));
        res.on("end", () => resolve({ status: res.statusCode!, body }));
      }).on("error", reject),
    );
    expect(health.status).toBe(200);
    expect(JSON.parse(health.body)).toMatchObject({ serving: true });
    // The SDK's tls option reaches the `ws` class for wss:// as it does grpc-js for grpcs://.
    const client = new Microturn({ url: `wss://localhost:${httpPort}`, clock: "manual", WebSocket: WebSocket as never, tls: { ca: pem("ca.pem") } });
    expect(await hello(client, sessions)).toBe("HELLO");
  });

  it("says which TLS option is wrong in the SDK", () => {
    expect(() => new Microturn({ url: "grpc://localhost:1", tls: { ca: "x" } })).toThrow(/grpcs:\/\/ or wss:\/\//);
    expect(() => new Microturn({ url: "ws://localhost:1", tls: { ca: "x" } })).toThrow(/not ws:\/\/localhost:1/);
    expect(() => new Microturn({ url: "grpcs://localhost:1", tls: { cert: "x" } })).toThrow(/cert and tls.key/);
    expect(() => new Microturn({ url: "wss://localhost:1", tls: { key: "x" } })).toThrow(/cert and tls.key/);
  });
});

describe("TLS settings", () => {
  it("takes the certificate and key together, and a client CA only with them", () => {
    expect(() => loadConfig(["--tls-cert", "a.pem"], {})).toThrow(ConfigError);
    expect(() => loadConfig([], { MICROTURN_TLS_KEY: "a.key" })).toThrow(/go together/);
    expect(() => loadConfig(["--tls-client-ca", "ca.pem"], {})).toThrow(/--tls-cert and --tls-key too/);
    const config = loadConfig(["--tls-cert", "a.pem", "--tls-key", "a.key"], {});
    expect(config).toMatchObject({ tlsCert: "a.pem", tlsKey: "a.key", tlsClientCa: "" });
  });

  it("refuses files that cannot serve, each with the reason", () => {
    const base = { tlsCert: fixture("server.pem"), tlsKey: fixture("server.key"), tlsClientCa: "" };
    expect(loadTls({ tlsCert: "", tlsKey: "", tlsClientCa: "" })).toBeUndefined();
    expect(loadTls(base)).toMatchObject({ cert: expect.any(Buffer), key: expect.any(Buffer) });
    expect(() => loadTls({ ...base, tlsCert: fixture("missing.pem") })).toThrow(/cannot read it \(ENOENT\)/);
    expect(() => loadTls({ ...base, tlsCert: fixture("server.key") })).toThrow(/not a PEM certificate/);
    expect(() => loadTls({ ...base, tlsKey: fixture("server.pem") })).toThrow(/not a PEM private key/);
    expect(() => loadTls({ ...base, tlsKey: fixture("client.key") })).toThrow(/is not the key of the certificate/);
    expect(() => loadTls(base, new Date("2200-01-01"))).toThrow(/expired/);
    expect(() => loadTls({ ...base, tlsClientCa: fixture("client.key") })).toThrow(/--tls-client-ca .*not a PEM certificate/);
    // A chain whose first certificate is whole and the rest cut short: only TLS itself finds it.
    const dir = mkdtempSync(join(tmpdir(), "microturn-tls-"));
    try {
      writeFileSync(join(dir, "chain.pem"), Buffer.concat([pem("server.pem"), Buffer.from(pem("ca.pem").toString().slice(0, 120))]));
      expect(() => loadTls({ ...base, tlsCert: join(dir, "chain.pem") })).toThrow(/TLS cannot use them/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
