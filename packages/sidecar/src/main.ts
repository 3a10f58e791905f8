// `microturn serve`: runs the sidecar until SIGTERM/SIGINT, then drains live
// sessions (GoAway with resume tokens) and exits. SIGHUP reloads TLS files.
import { startSidecar, type Sidecar } from "./app.js";
import { ConfigError, type SidecarConfig } from "./config.js";

/**
 * The sidecar could not start for a reason outside its settings' checks (an
 * engine or background model it cannot reach, a model file it cannot load):
 * `microturn` prints the message as one line and exits 1.
 */
export class StartupError extends Error {
  constructor(
    cause: unknown,
    /** --log-level debug: the cause's stack is printed too. */
    readonly debug: boolean,
  ) {
    super(cause instanceof Error ? cause.message : String(cause), { cause });
    this.name = "StartupError";
  }
}

export async function serve(config: SidecarConfig): Promise<number> {
  // SIGHUP serves renewed TLS files now rather than at the next --tls-reload-ms check. Its handler is
  // in place from the start to the exit: without one, a SIGHUP (a certificate hook firing while the
  // engine loads or the sidecar drains) would end the process.
  let started: Sidecar | undefined;
  process.on("SIGHUP", () => {
    if (!started) return;
    try {
      const result = started.reloadTls();
      if (result !== "reloaded") started.logger.info(result === "off" ? "SIGHUP: TLS is off, nothing to reload" : "SIGHUP: the TLS files are unchanged");
    } catch {
      // Logged and counted by reloadTls; the previous certificate stays served.
    }
  });
  let sidecar: Sidecar;
  try {
    sidecar = await startSidecar(config);
  } catch (err) {
    throw err instanceof ConfigError ? err : new StartupError(err, config.logLevel === "debug");
  }
  started = sidecar;
  // Node ends the process on a rejection nobody handled: one stray promise of
  // one session would drop every session this sidecar holds. It is a bug all
  // the same, so it is logged with its stack and counted on /metrics.
  process.on("unhandledRejection", (reason) => {
    sidecar.metrics.unhandledRejections.inc();
    sidecar.logger.error("unhandled promise rejection (a bug); the sidecar goes on", { error: reason instanceof Error ? (reason.stack ?? reason.message) : String(reason) });
  });
  const caps = sidecar.engine.capabilities;
  const http = sidecar.server.httpAddress ? ` http=${sidecar.server.httpAddress}` : "";
  const socket = sidecar.server.socketPath ? ` socket=${sidecar.server.socketPath}` : "";
  const tls = sidecar.server.tls === "off" ? "" : ` tls=${sidecar.server.tls}`;
  const peers = config.advertiseUrl ? ` advertise=${config.advertiseUrl}` : "";
  process.stdout.write(
    `microturn sidecar ready grpc=${sidecar.server.grpcAddress}${socket}${http}${tls}${peers} engine=${caps.engine} model=${caps.modelId}${caps.randomWeights ? " (random weights: output is noise)" : ""}\n`,
  );
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      sidecar.logger.info("draining", { signal, sessions: sidecar.hub.size, drainMs: config.drainMs });
      resolve();
    };
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
  });
  await sidecar.shutdown();
  sidecar.logger.info("stopped");
  return 0;
}
