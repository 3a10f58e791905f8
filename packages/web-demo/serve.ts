// `npm run demo:web`: starts a sidecar in-process (embedded engine unless
// flags say otherwise) and serves the demo page in front of it.
//   tsx serve.ts [--web-port 8080] [sidecar flags, e.g. --engine sglang-http --engine-url http://…]
import { readFileSync } from "node:fs";
import { loadConfig, startSidecar } from "@microturn/sidecar";
import { startPageServer } from "./page-server.js";

function takeWebPort(args: string[]): number {
  const at = args.indexOf("--web-port");
  if (at < 0) return 8080;
  const raw = args[at + 1];
  const port = Number(raw);
  if (!raw || !Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--web-port must be 0..65535, got ${raw}`);
  args.splice(at, 2);
  return port;
}

const args = process.argv.slice(2);
const webPort = takeWebPort(args);
// Free ports unless the flags pick them; later flags win over these defaults.
const config = loadConfig(["--port", "0", "--metrics-port", "0", ...args]);
// The page server passes the page's WebSocket through as a client of its own; it has no client certificate to show.
if (config.tlsClientCa) throw new Error("the web demo cannot front a sidecar that asks for client certificates (--tls-client-ca): its page server has none to present");
const sidecar = await startSidecar(config);
const { httpAddress } = sidecar.server;
if (!httpAddress) throw new Error("the sidecar's HTTP server is off (--metrics-port -1); the page needs its WebSocket endpoint");
// A TLS sidecar: the tunnel speaks TLS to it and accepts the certificate its flags name (read again per connection: reloads).
const sidecarTls = config.tlsCert ? { certificate: () => readFileSync(config.tlsCert) } : undefined;
const page = await startPageServer({ sidecarHttpAddress: httpAddress, port: webPort, ...(sidecarTls ? { sidecarTls } : {}) });
const caps = sidecar.engine.capabilities;
console.log(`microturn web demo: open ${page.url}`);
console.log(`  sidecar: gRPC ${sidecar.server.grpcAddress}, WebSocket ${sidecarTls ? "wss" : "ws"}://${httpAddress}/v1/converse, engine ${caps.engine} (${caps.modelId})`);
console.log("  Ctrl-C stops both.");

let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  await page.close();
  await sidecar.shutdown();
  process.exit(0);
}
process.on("SIGINT", () => void stop());
process.on("SIGTERM", () => void stop());
