// Builds a running sidecar from its config: engine (through the registry, so
// no adapter is imported here), session hub, metrics, servers.
import { createBackgroundClient } from "./background/from-config.js";
import type { BackgroundClient } from "./background/client.js";
import { BackgroundManager } from "./background/manager.js";
import { ManagerSessionBackground } from "./background/session-background.js";
import { parseAllowedOrigins, type SidecarConfig } from "./config.js";
import type { Engine } from "./engines/engine.js";
import { PeerClient } from "./handoff/peer-client.js";
import { PeerKey } from "./handoff/peer-key.js";
import { createLogger, type Logger } from "./logger.js";
import { SidecarMetrics } from "./metrics.js";
import { startServer, type RunningServer } from "./server.js";
import type { ContextScript } from "./session/context-deliveries.js";
import { SessionInputMedia } from "./session/input-media.js";
import { SessionHub, type HubHandoff, type SessionHubOptions } from "./session/session-hub.js";
import { SpinWait } from "./session/spin-wait.js";
import { registerBuiltinTools } from "./tools/builtins.js";
import { ClientToolBroker } from "./tools/client-broker.js";
import { ServerToolRegistry } from "./tools/registry.js";
import { RegistrySessionTools } from "./tools/session-tools.js";
import { describeCertificate, loadTls, readConfigFile, TlsReloader, type TlsMaterial } from "./tls.js";

export interface Sidecar {
  readonly config: SidecarConfig;
  readonly engine: Engine;
  readonly hub: SessionHub;
  readonly metrics: SidecarMetrics;
  readonly server: RunningServer;
  readonly logger: Logger;
  /**
   * Reads the TLS files again and serves them if they changed (SIGHUP does
   * this): "reloaded", "unchanged", or "off" without TLS. Material that cannot
   * serve throws a ConfigError naming the problem; the old stays served.
   */
  reloadTls(): "reloaded" | "unchanged" | "off";
  /** GoAway to every session, wait up to drainMs for them to leave, then stop. */
  shutdown(): Promise<void>;
}

export interface SidecarOverrides {
  /** An engine built by the caller (tests, benchmarks) instead of the registry's. */
  engine?: Engine;
  /** A background client built by the caller instead of the config's; null for none. */
  background?: BackgroundClient | null;
  logger?: Logger;
  hub?: Partial<Pick<SessionHubOptions, "createBackground" | "createTools" | "createMedia">>;
  /**
   * A replay's recorded context (replay.ts): sessions take what enters their
   * model's context from it, and their client tools have no deadlines (the
   * recording says how each call ended).
   */
  contextScript?: ContextScript;
}

export async function startSidecar(config: SidecarConfig, overrides: SidecarOverrides = {}): Promise<Sidecar> {
  const logger = overrides.logger ?? createLogger(config.logLevel);
  // Before the engine loads a model: a TLS file that cannot serve fails at once.
  const tls = loadTls(config);
  const peerKey = config.peerKey ? new PeerKey(config.peerKey, config.peerKeysAccepted ? config.peerKeysAccepted.split(",") : []) : undefined;
  const peers = peerKey
    ? new PeerClient({
        key: peerKey,
        selfUrl: config.advertiseUrl,
        // Under mutual TLS a peer asks for a certificate: this sidecar shows its own.
        ...(tls ? { tls: { ...(config.peerCa ? { ca: readConfigFile(config.peerCa, "--peer-ca") } : {}), ...(tls.clientCa ? { cert: tls.cert, key: tls.key } : {}) } } : {}),
      })
    : undefined;
  // Loaded on demand: a caller with its own engine never loads the adapters.
  const engine = overrides.engine ?? (await (await import("./engines/registry.js")).createEngine(config, logger));
  const metrics = new SidecarMetrics();
  const tools = new ServerToolRegistry({ defaultTimeoutMs: config.toolTimeoutMs });
  registerBuiltinTools(tools);
  let background: BackgroundClient | undefined;
  try {
    background = overrides.background === null ? undefined : (overrides.background ?? (await createBackgroundClient(config, engine.createBackgroundClient?.bind(engine), logger)));
  } catch (err) {
    // The engine holds a model (and llama.cpp its threads): a sidecar that cannot start lets it go.
    peers?.close();
    await engine.dispose().catch(() => undefined);
    throw err;
  }
  let serving = true;
  const spinWait = new SpinWait({ windowMs: config.spinWindowMs, maxSessions: config.spinMaxSessions });
  metrics.spinTime(() => spinWait.spinMs);
  const handoff: HubHandoff | undefined =
    peerKey && peers
      ? {
          key: peerKey,
          selfUrl: config.advertiseUrl,
          take: (owner, token, lastEventSeq) => peers.take(owner, token, lastEventSeq),
          settle: (owner, token, handoverId) => peers.settle(owner, token, handoverId),
          settleLeaseMs: config.moveLeaseMs,
          moved: (direction, result, ms) => metrics.sessionMoved(direction, result, ms),
        }
      : undefined;
  const hub = new SessionHub({
    engine,
    limits: {
      maxOutputTokensPerTurn: config.maxOutputTokensPerTurn,
      maxOutputTokensCeiling: config.maxOutputTokensCeiling,
      maxQueuedChunks: config.maxQueuedChunks,
      sessionTokens: config.sessionTokens,
      rewindHorizonMs: config.rewindHorizonMs,
    },
    maxSessions: config.maxSessions,
    resumeGraceMs: config.resumeGraceMs,
    recordDir: config.recordDir,
    logger,
    spinWait,
    ...(handoff ? { handoff } : {}),
    observer: metrics.observer(),
    createMedia: () => new SessionInputMedia(),
    serverTools: tools.toolSpecs(),
    createTools: () => new RegistrySessionTools({ registry: tools, ...(overrides.contextScript ? { broker: new ClientToolBroker({ deadlines: false }) } : {}) }),
    ...(overrides.contextScript ? { contextScript: overrides.contextScript } : {}),
    createBackground: background
      ? () =>
          new ManagerSessionBackground(
            new BackgroundManager({
              client: background,
              maxConcurrent: config.backgroundMaxConcurrent,
              defaultTimeoutMs: config.backgroundTimeoutMs,
              tools,
              model: config.backgroundModel,
            }),
          )
      : undefined,
    ...overrides.hub,
  });
  let server: RunningServer;
  try {
    server = await startServer({
      hub,
      logger,
      metrics,
      apiKey: config.apiKey,
      allowedOrigins: parseAllowedOrigins(config.allowedOrigins),
      ...(tls ? { tls } : {}),
      host: config.host,
      port: config.port,
      ...(config.socket ? { socketPath: config.socket } : {}),
      httpPort: config.httpPort,
      ...(peerKey ? { peerKey } : {}),
      isServing: () => serving,
    });
  } catch (err) {
    // A port in use: nothing of this sidecar may stay up (the engine holds a model, the background client a pool).
    peers?.close();
    await background?.close().catch(() => undefined);
    await engine.dispose().catch(() => undefined);
    throw err;
  }
  metrics.holding(hub);
  const served = (material: TlsMaterial) => {
    const { subject, validTo } = describeCertificate(material);
    metrics.tlsServing(validTo);
    return { subject, validTo: validTo.toISOString() };
  };
  if (tls) served(tls);
  const reloader = tls
    ? new TlsReloader(
        config,
        tls,
        (material) => server.updateTls(material),
        (outcome) => {
          if ("error" in outcome) {
            metrics.tlsReloaded("failed");
            logger.error("TLS files changed but cannot serve; the previous certificate stays served", { error: outcome.error.message });
          } else {
            metrics.tlsReloaded("ok");
            logger.info("TLS reloaded: new connections get the new certificate", served(outcome.reloaded));
          }
        },
      )
    : undefined;
  reloader?.start(config.tlsReloadMs);

  return {
    config,
    engine,
    hub,
    metrics,
    server,
    logger,
    reloadTls() {
      return reloader ? reloader.check() : "off";
    },
    async shutdown() {
      reloader?.stop();
      serving = false;
      server.servingChanged();
      hub.drain(config.drainMs);
      const deadline = Date.now() + config.drainMs;
      // With peers a session is waited for until one has taken it (its state sent); without, until its client has left.
      const stays = hub.movesSessions ? () => hub.unsettled > 0 : () => [...hub.sessions()].some((h) => h.outbox.attached);
      while (Date.now() < deadline && stays()) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      await hub.closeAll("sidecar shut down");
      spinWait.close();
      await server.close();
      peers?.close();
      await background?.close();
      await engine.dispose();
    },
  };
}
