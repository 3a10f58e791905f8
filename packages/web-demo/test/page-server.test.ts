// The demo's page server: serves the page and its bundles only, and passes
// WebSocket upgrades on /v1/converse through to the sidecar's HTTP port.
import { readFileSync } from "node:fs";
import { createServer, request, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo, Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { startPageServer, type PageServer, type SidecarTls } from "../page-server.js";

const servers: Array<{ close(): unknown }> = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  servers.push({ close: () => new Promise((r) => server.close(r)) });
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const tlsFixture = (name: string) => readFileSync(new URL(`../../sidecar/test/fixtures/tls/${name}`, import.meta.url));

async function page(sidecarHttpAddress: string, sidecarTls?: SidecarTls): Promise<PageServer> {
  const p = await startPageServer({ sidecarHttpAddress, ...(sidecarTls ? { sidecarTls } : {}) });
  servers.unshift(p); // closed before the upstream it points at
  return p;
}

/** Sends an upgrade request; resolves with the status line and, on 101, the first bytes after it. */
function upgrade(url: string, path: string): Promise<{ status: number; echoed?: string; body?: string }> {
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, url), { headers: { connection: "Upgrade", upgrade: "websocket", "sec-websocket-protocol": "microturn.v1" } });
    req.on("upgrade", (res, socket: Socket) => {
      socket.write("ping");
      socket.once("data", (data) => {
        socket.destroy();
        resolve({ status: res.statusCode ?? 0, echoed: data.toString() });
      });
    });
    req.on("response", (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve(body ? { status: res.statusCode ?? 0, body } : { status: res.statusCode ?? 0 }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("page server", () => {
  it("serves the page and nothing outside it", async () => {
    const p = await page("127.0.0.1:1");
    const index = await fetch(p.url);
    expect(index.status).toBe(200);
    expect(index.headers.get("content-type")).toContain("text/html");
    expect(await index.text()).toContain('src="dist/main.js"');
    for (const path of ["/package.json", "/page-server.ts", "/dist/..%2fpackage.json", "/dist/%2e%2e/serve.ts", "/test/page-server.test.ts", "/dist/%E0%A4%A", "/dist/..%5Cpackage.json", "/dist/%5C..%5Cserve.ts"]) {
      expect((await fetch(new URL(path, p.url))).status, path).toBe(404);
    }
    expect((await fetch(p.url, { method: "POST", body: "x" })).status).toBe(404);
    const raw = await new Promise<number>((resolve, reject) =>
      request(p.url, { path: "//" }, (res) => resolve(res.statusCode ?? 0))
        .on("error", reject)
        .end(),
    );
    expect(raw).toBe(404);
  });

  /** An upstream that switches protocols and echoes; `seen` is what it was asked. */
  function echoUpstream(upstream: Server): { url?: string; protocol?: string } {
    const seen: { url?: string; protocol?: string } = {};
    upstream.on("upgrade", (req, socket: Socket) => {
      Object.assign(seen, { url: req.url, protocol: req.headers["sec-websocket-protocol"] as string });
      socket.write("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
      socket.on("data", (data) => socket.write(`echo:${data}`));
      socket.on("end", () => socket.end()); // http servers keep upgraded sockets half-open
    });
    return seen;
  }

  it("passes /v1/converse upgrades through to the sidecar, headers and bytes", async () => {
    const upstream = createServer();
    const seen = echoUpstream(upstream);
    const p = await page(await listen(upstream));
    const answer = await upgrade(p.url, "/v1/converse?api_key=k");
    expect(answer).toEqual({ status: 101, echoed: "echo:ping" });
    expect(seen).toEqual({ url: "/v1/converse?api_key=k", protocol: "microturn.v1" });
  });

  it("speaks TLS to a TLS sidecar and accepts only the certificate it was given (the tunnel was plaintext)", async () => {
    const upstream = createHttpsServer({ cert: tlsFixture("server.pem"), key: tlsFixture("server.key") });
    const seen = echoUpstream(upstream);
    const address = await listen(upstream);
    const p = await page(address, { certificate: () => tlsFixture("server.pem") });
    expect(await upgrade(p.url, "/v1/converse")).toEqual({ status: 101, echoed: "echo:ping" });
    expect(seen).toEqual({ url: "/v1/converse", protocol: "microturn.v1" });
    // A sidecar presenting another certificate gets nothing; the page says why.
    const wrong = await page(address, { certificate: () => tlsFixture("server2.pem") });
    const refused = await upgrade(wrong.url, "/v1/converse");
    expect(refused.status).toBe(502);
    expect(refused.body).toContain("another certificate");
    const unreadable = await page(address, { certificate: () => "not a certificate" });
    expect(await upgrade(unreadable.url, "/v1/converse")).toMatchObject({ status: 502, body: expect.stringContaining("cannot be read") });
    expect((await fetch(wrong.url)).status).toBe(200); // still serving
  });

  it("refuses upgrades elsewhere and survives a sidecar that is down", async () => {
    const dead = createServer();
    const address = await listen(dead);
    await new Promise((r) => dead.close(r)); // nothing listens there now
    const p = await page(address);
    expect(await upgrade(p.url, "/other")).toEqual({ status: 404 });
    await expect(upgrade(p.url, "/v1/converse")).rejects.toThrow(/socket hang up|ECONNRESET/);
    expect((await fetch(p.url)).status).toBe(200); // still serving
  });
});
