// A TCP balancer for tests and benchmarks of sessions moving between sidecars:
// each new connection goes to the sidecar it points at when the connection
// opens, as an L4 balancer behind a Kubernetes Service would after the old
// pod stopped being ready. Test-only.
import { connect, createServer, type AddressInfo, type Socket } from "node:net";

export interface TcpBalancer {
  port: number;
  /** New connections go to this port (on 127.0.0.1) from now on. */
  point(port: number): void;
  /** Cuts every connection open now (a network blip). */
  cut(): void;
  close(): Promise<void>;
}

export async function startTcpBalancer(target: number): Promise<TcpBalancer> {
  const sockets = new Set<Socket>();
  const server = createServer((down) => {
    const up = connect(target, "127.0.0.1");
    for (const s of [down, up]) {
      sockets.add(s);
      s.setNoDelay(true);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => undefined);
    }
    down.on("close", () => up.destroy());
    up.on("close", () => down.destroy());
    down.pipe(up).pipe(down);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    point(port) {
      target = port;
    },
    cut() {
      for (const s of sockets) s.destroy();
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A port nothing listens on now (the caller binds it next). */
export async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}
