// Serves the built demo page and passes WebSocket upgrades on /v1/converse
// through to a sidecar, so the page's default URL (its own host) reaches it:
// the shape a reverse proxy in front of the sidecar gives in production.
import { readFile } from "node:fs/promises";
import { createServer, type IncomingMessage } from "node:http";
import { X509Certificate } from "node:crypto";
import { connect, type AddressInfo, type Socket } from "node:net";
import { connect as connectTls } from "node:tls";
import { extname, join, posix } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL(".", import.meta.url));
const FILES = new Set(["/index.html"]);
const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".map": "application/json",
};

/** The certificate a TLS sidecar presents (PEM, its first certificate), asked for each connection. */
export interface SidecarTls {
  certificate: () => string | Buffer;
}

export interface PageServerOptions {
  /** host:port of the sidecar's HTTP server (where its WebSocket endpoint lives). */
  sidecarHttpAddress: string;
  /**
   * The sidecar serves TLS (`--tls-cert`): the tunnel speaks TLS to it and
   * accepts only the certificate it is given here (PEM, its first
   * certificate; asked again for each connection, so a reloaded one is
   * followed). The page itself stays plain HTTP on this server.
   */
  sidecarTls?: SidecarTls;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
}

export interface PageServer {
  /** http://host:port/ of the page. */
  readonly url: string;
  close(): Promise<void>;
}

function pathOf(url: string | undefined): string | undefined {
  try {
    return new URL(url ?? "/", "http://page").pathname;
  } catch {
    return undefined; // e.g. "//" (a host-less authority)
  }
}

/** Maps a request path to a file the demo serves: index.html and the bundles under dist/; nothing else. */
function fileFor(pathname: string | undefined): string | undefined {
  if (pathname === undefined) return undefined;
  let path: string;
  try {
    // URL paths are POSIX on every system (Windows' own normalize turns them into backslash paths).
    path = pathname === "/" ? "/index.html" : posix.normalize(decodeURIComponent(pathname));
  } catch {
    return undefined; // malformed percent-encoding
  }
  if (path.includes("\\")) return undefined; // a separator on Windows, never in a file the demo serves
  if (FILES.has(path) || (path.startsWith("/dist/") && !path.includes(".."))) return join(ROOT, ...path.split("/").filter(Boolean));
  return undefined;
}

function passUpgrade(req: IncomingMessage, client: Socket, head: Buffer, target: Target): void {
  const forward = () => {
    const lines = [`${req.method} ${req.url} HTTP/${req.httpVersion}`];
    for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
    upstream.write(`${lines.join("\r\n")}\r\n\r\n`);
    if (head.length) upstream.write(head);
    upstream.pipe(client).pipe(upstream);
  };
  let upstream: Socket;
  /** The client was answered 502: its socket ends once that is written, not at once. */
  let refused = false;
  if (target.tls) {
    let expected: X509Certificate;
    try {
      expected = new X509Certificate(target.tls.certificate());
    } catch (err) {
      badGateway(client, `the sidecar's certificate cannot be read: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    // The sidecar is this process's own (or the one named to it): the certificate it presents is the one its
    // flags name, whoever signed it and whatever names it carries.
    const tlsSocket = connectTls({ host: target.host, port: target.port, rejectUnauthorized: false, ALPNProtocols: ["http/1.1"] }, () => {
      if (!tlsSocket.getPeerX509Certificate()?.raw.equals(expected.raw)) {
        refused = true;
        badGateway(client, "the sidecar presented another certificate than the one it was started with");
        tlsSocket.destroy();
        return;
      }
      forward();
    });
    upstream = tlsSocket;
  } else {
    upstream = connect(target.port, target.host, forward);
  }
  const drop = () => {
    upstream.destroy();
    if (!refused) client.destroy();
  };
  upstream.on("error", drop);
  client.on("error", drop);
  upstream.on("close", drop);
  client.on("close", drop);
}

interface Target {
  host: string;
  port: number;
  tls?: SidecarTls;
}

/** Ends an upgrade the sidecar cannot take, saying why. */
function badGateway(client: Socket, why: string): void {
  if (client.destroyed || client.writableEnded) return;
  client.end(`HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n${why}\n`);
}

export async function startPageServer(opts: PageServerOptions): Promise<PageServer> {
  const sidecar = new URL(`http://${opts.sidecarHttpAddress}`);
  const target: Target = { host: sidecar.hostname.replace(/^\[|\]$/g, ""), port: Number(sidecar.port), ...(opts.sidecarTls ? { tls: opts.sidecarTls } : {}) };
  const tunnels = new Set<Socket>();
  const server = createServer((req, res) => {
    const file = fileFor(pathOf(req.url));
    if (req.method !== "GET" || !file) {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
      return;
    }
    readFile(file).then(
      (body) => res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream", "cache-control": "no-store" }).end(body),
      () => res.writeHead(404, { "content-type": "text/plain" }).end(`not found (run \`npm run build -w @microturn/web-demo\` first?)\n`),
    );
  });
  server.on("upgrade", (req: IncomingMessage, socket: Socket, head: Buffer) => {
    if (pathOf(req.url) !== "/v1/converse") {
      socket.end("HTTP/1.1 404 Not Found\r\n\r\n");
      return;
    }
    tunnels.add(socket);
    socket.on("close", () => tunnels.delete(socket));
    passUpgrade(req, socket, head, target);
  });
  const host = opts.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, host, resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${host}:${port}/`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of tunnels) socket.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
