// Who may open a session over the WebSocket endpoint: a refused API key or
// client certificate is told in a close code the SDK maps to a typed error
// (a refused upgrade reaches a browser as 1006, retried as an unreachable
// sidecar), and browser pages are let in by their Origin.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Microturn } from "@microturn/sdk";
import { afterEach, describe, expect, it } from "vitest";
import { WebSocket, type ClientOptions } from "ws";
import { startSidecar } from "../src/app.js";
import { loadConfig, parseAllowedOrigins } from "../src/config.js";
import { createLogger } from "../src/logger.js";
import { SidecarMetrics } from "../src/metrics.js";
import { startServer } from "../src/server.js";
import { SessionHub } from "../src/session/session-hub.js";
import { loadTls } from "../src/tls.js";
import { FakeEngine } from "./helpers/fake-engine.js";
import { Started } from "./helpers/started.js";
import { hello } from "./helpers/sdk-hello.js";

const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/tls/${name}`, import.meta.url));

const started = new Started();
const sessions = started.sessions;

async function setup(opts: { apiKey?: string; allowedOrigins?: string; mutual?: boolean } = {}) {
  const engine = new FakeEngine();
  const lines: string[] = [];
  const logger = createLogger("warn", (line) => lines.push(line));
  const hub = new SessionHub({ engine, limits: { maxOutputTokensPerTurn: 32, maxQueuedChunks: 50 }, maxSessions: 8, resumeGraceMs: 5000, recordDir: "", logger });
  const tls = opts.mutual ? loadTls({ tlsCert: fixture("server.pem"), tlsKey: fixture("server.key"), tlsClientCa: fixture("ca.pem") }) : undefined;
  const running = (started.server = await startServer({
    hub,
    logger,
    metrics: new SidecarMetrics(false),
    apiKey: opts.apiKey ?? "",
    allowedOrigins: parseAllowedOrigins(opts.allowedOrigins ?? ""),
    ...(tls ? { tls } : {}),
    host: "127.0.0.1",
    port: 0,
    httpPort: 0,
    isServing: () => true,
  }));
  const warnings = () => lines.map((line) => JSON.parse(line) as { level: string; msg: string; origin?: string }).filter((l) => l.level === "warn");
  return { address: running.httpAddress!, warnings };
}

afterEach(() => started.close());

type Outcome = { open: true } | { close: number; reason: string } | { status: number };

/** What a `ws` client gets from the endpoint: it opens (then it is closed), is closed at once with a code, or its upgrade is refused. */
function attempt(url: string, options: ClientOptions = {}): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, "microturn.v1", options);
    let opened = false;
    ws.on("open", () => {
      opened = true;
      // A refusal comes right after the handshake: wait a moment for it before calling this open.
      setTimeout(() => {
        if (ws.readyState !== ws.OPEN) return;
        ws.close(1000);
        resolve({ open: true });
      }, 100);
    });
    ws.on("close", (code, reason) => {
      if (opened) resolve({ close: code, reason: reason.toString() });
    });
    ws.on("unexpected-response", (_req, res) => {
      resolve({ status: res.statusCode! });
      res.resume();
      ws.terminate();
    });
    ws.on("error", (err) => {
      if (!opened) reject(err);
    });
  });
}

const wsClient = (url: string, apiKey?: string) => new Microturn({ url, clock: "manual", WebSocket: WebSocket as never, ...(apiKey ? { apiKey } : {}) });

describe("WebSocket credentials", () => {
  it("answers a missing or wrong API key with close 4016 after the handshake, and lets the right key in", async () => {
    const { address } = await setup({ apiKey: "sekret" });
    const refused = { close: 4016, reason: "missing or wrong API key: add ?api_key=<MICROTURN_API_KEY> to the URL" };
    expect(await attempt(`ws://${address}/v1/converse?api_key=nope`)).toEqual(refused);
    expect(await attempt(`ws://${address}/v1/converse`)).toEqual(refused);
    // The handshake chose the subprotocol as for any client: a browser would fail a handshake without it and see 1006.
    const ws = new WebSocket(`ws://${address}/v1/converse?api_key=nope`, "microturn.v1");
    await new Promise((resolve) => ws.once("open", resolve));
    expect(ws.protocol).toBe("microturn.v1");
    expect(await attempt(`ws://${address}/v1/converse?api_key=sekret`)).toEqual({ open: true });
    expect(await hello(wsClient(`ws://${address}`, "sekret"), sessions)).toBe("HELLO");
  });

  it("gives the SDK an UnauthenticatedError it does not retry", async () => {
    const { address } = await setup({ apiKey: "sekret" });
    const session = wsClient(`ws://${address}`, "wrong").session();
    sessions.push(session);
    let reconnects = 0;
    session.on("reconnecting", () => reconnects++);
    const error = await session.connect({ signal: AbortSignal.timeout(5000) }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toMatchObject({ name: "UnauthenticatedError", retryable: false, message: expect.stringMatching(/wrong API key/) });
    expect(reconnects).toBe(0);
  });

  it("under mutual TLS, answers a client without a signed certificate with close 4007 (PERMISSION_DENIED)", async () => {
    const { address } = await setup({ mutual: true });
    const port = address.split(":").pop();
    const outcome = await attempt(`wss://localhost:${port}/v1/converse`, { ca: readFileSync(fixture("ca.pem")) });
    expect(outcome).toEqual({ close: 4007, reason: "client certificate required, signed by the sidecar's client CA" });
  });
});

describe("WebSocket origins", () => {
  const url = (address: string, key = "") => `ws://${address}/v1/converse${key ? `?api_key=${key}` : ""}`;

  it("by default lets in clients without an Origin and loopback pages, and refuses other pages with 403, logged once per origin", async () => {
    const { address, warnings } = await setup();
    expect(await attempt(url(address))).toEqual({ open: true });
    for (const origin of ["http://localhost:1234", "http://127.0.0.1:8080", "https://127.1.2.3", "http://[::1]:9", "http://app.localhost:3000", "http://[::ffff:127.0.0.1]:80"]) {
      expect(await attempt(url(address), { origin }), origin).toEqual({ open: true });
    }
    for (const origin of ["https://evil.example", "https://evil.example", "http://localhost.evil.example", "http://evil-localhost", "http://[::ffff:10.0.0.1]", "null"]) {
      expect(await attempt(url(address), { origin }), origin).toEqual({ status: 403 });
    }
    expect(warnings().map((w) => w.origin)).toEqual(["https://evil.example", "http://localhost.evil.example", "http://evil-localhost", "http://[::ffff:10.0.0.1]", "null"]);
    expect(warnings()[0]!.msg).toMatch(/--allowed-origins/);
  });

  it("with an API key set, lets any page in that has the key", async () => {
    const { address } = await setup({ apiKey: "sekret" });
    expect(await attempt(url(address, "sekret"), { origin: "https://evil.example" })).toEqual({ open: true });
    expect(await attempt(url(address), { origin: "https://evil.example" })).toMatchObject({ close: 4016 });
  });

  it("with --allowed-origins, lets in the pages listed and no others", async () => {
    const { address } = await setup({ allowedOrigins: "https://app.example.com, http://localhost:8080" });
    expect(await attempt(url(address), { origin: "https://app.example.com" })).toEqual({ open: true });
    expect(await attempt(url(address), { origin: "http://localhost:8080" })).toEqual({ open: true });
    expect(await attempt(url(address))).toEqual({ open: true });
    for (const origin of ["https://evil.example", "http://localhost:1234", "http://app.example.com"]) {
      expect(await attempt(url(address), { origin }), origin).toEqual({ status: 403 });
    }
  });

  it("with --allowed-origins '*', lets any page in", async () => {
    const { address } = await setup({ allowedOrigins: "*" });
    for (const origin of ["https://evil.example", "null", "http://localhost:1234"]) {
      expect(await attempt(url(address), { origin }), origin).toEqual({ open: true });
    }
  });

  it("takes the setting from the config (MICROTURN_ALLOWED_ORIGINS)", async () => {
    const config = loadConfig(["--port", "0", "--metrics-port", "0", "--log-level", "error"], { MICROTURN_ALLOWED_ORIGINS: "https://App.Example.com:443" });
    const sidecar = (started.sidecar = await startSidecar(config, { engine: new FakeEngine(), background: null }));
    const address = sidecar.server.httpAddress!;
    expect(await attempt(url(address), { origin: "https://app.example.com" })).toEqual({ open: true });
    expect(await attempt(url(address), { origin: "http://localhost:1234" })).toEqual({ status: 403 });
  });
});
