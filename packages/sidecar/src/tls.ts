// TLS material for the sidecar's servers (gRPC and the HTTP port): read and
// checked at start, before the engine loads or anything listens, so a wrong
// path, a key of another certificate or an expired certificate is a clear
// ConfigError, not a handshake every client fails later; read again, with the
// same checks, when the files change (TlsReloader) or on SIGHUP.
import { createPrivateKey, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { createSecureContext, type SecureContextOptions } from "node:tls";
import { ConfigError, type SidecarConfig } from "./config.js";

export interface TlsMaterial {
  /** PEM certificate chain, the server's own first. */
  cert: Buffer;
  key: Buffer;
  /** PEM CA bundle client certificates must chain to (mutual TLS). */
  clientCa?: Buffer;
}

/** A file a setting names, read whole; a ConfigError naming the setting when it cannot be. */
export function readConfigFile(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ConfigError(`${what} ${path}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

function readFileIfAny(path: string): Buffer | undefined {
  try {
    return readFileSync(path);
  } catch {
    return undefined;
  }
}

function certificate(pem: Buffer, path: string, what: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (err) {
    throw new ConfigError(`${what} ${path}: not a PEM certificate (${(err as Error).message})`);
  }
}

/** The material as TLS takes it (tls.createSecureContext, a server's setSecureContext). */
export function secureContextOptions(material: TlsMaterial): SecureContextOptions {
  return { cert: material.cert, key: material.key, ...(material.clientCa ? { ca: material.clientCa } : {}) };
}

/** What a server with this material speaks: plaintext, TLS, or TLS with client certificates required. */
export function tlsMode(material: TlsMaterial | undefined): "off" | "tls" | "mtls" {
  return !material ? "off" : material.clientCa ? "mtls" : "tls";
}

/** The served certificate's subject and last day: what logs and metrics say of it. */
export function describeCertificate(material: TlsMaterial): { subject: string; validTo: Date } {
  const leaf = new X509Certificate(material.cert);
  return { subject: leaf.subject.replaceAll("\n", ", "), validTo: new Date(leaf.validTo) };
}

/** The config's TLS files, checked; undefined when TLS is off. */
export function loadTls(config: Pick<SidecarConfig, "tlsCert" | "tlsKey" | "tlsClientCa">, now = new Date()): TlsMaterial | undefined {
  if (!config.tlsCert) return undefined;
  const cert = readConfigFile(config.tlsCert, "--tls-cert");
  const key = readConfigFile(config.tlsKey, "--tls-key");
  const leaf = certificate(cert, config.tlsCert, "--tls-cert");
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    throw new ConfigError(`--tls-key ${config.tlsKey}: not a PEM private key (${(err as Error).message})`);
  }
  if (!leaf.checkPrivateKey(privateKey)) {
    throw new ConfigError(`--tls-key ${config.tlsKey} is not the key of the certificate in --tls-cert ${config.tlsCert}`);
  }
  if (new Date(leaf.validTo) < now) throw new ConfigError(`--tls-cert ${config.tlsCert}: the certificate expired on ${leaf.validTo}`);
  if (new Date(leaf.validFrom) > now) throw new ConfigError(`--tls-cert ${config.tlsCert}: the certificate is not valid before ${leaf.validFrom}`);
  let clientCa: Buffer | undefined;
  if (config.tlsClientCa) {
    clientCa = readConfigFile(config.tlsClientCa, "--tls-client-ca");
    certificate(clientCa, config.tlsClientCa, "--tls-client-ca");
  }
  // The whole of each file as a TLS stack takes it: a chain cut short after its first certificate
  // (a file still being written) passes the checks above and fails here, not in a handshake.
  const material = clientCa ? { cert, key, clientCa } : { cert, key };
  try {
    createSecureContext(secureContextOptions(material));
  } catch (err) {
    throw new ConfigError(`--tls-cert ${config.tlsCert} with --tls-key ${config.tlsKey}${clientCa ? ` and --tls-client-ca ${config.tlsClientCa}` : ""}: TLS cannot use them (${(err as Error).message})`);
  }
  return material;
}

/** What a reload check came to, when it was not "unchanged". */
export type TlsReloadOutcome = { reloaded: TlsMaterial } | { error: Error };

/**
 * Serves renewed TLS material without a restart: `check` reads the config's
 * files again and, when they changed, checks them as at start and hands them
 * to `apply`; material that fails a check is refused with a ConfigError and
 * the old stays served. Either outcome goes to `report`. Checked every
 * `everyMs` once started (a certificate renewed in place, as a secret volume
 * or an ACME client does) and on demand (SIGHUP).
 */
export class TlsReloader {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly config: Pick<SidecarConfig, "tlsCert" | "tlsKey" | "tlsClientCa">,
    private current: TlsMaterial,
    private readonly apply: (material: TlsMaterial) => void,
    private readonly report: (outcome: TlsReloadOutcome) => void,
  ) {}

  /** "reloaded" when new material is now served, "unchanged" when the files hold what is served; throws ConfigError when they cannot serve. */
  check(): "reloaded" | "unchanged" {
    // Unchanged files are not checked again: a served certificate that expired is the expiry metric's to report.
    const same = (path: string, served: Buffer | undefined) => (served ? readFileIfAny(path)?.equals(served) === true : !path);
    if (same(this.config.tlsCert, this.current.cert) && same(this.config.tlsKey, this.current.key) && same(this.config.tlsClientCa, this.current.clientCa)) return "unchanged";
    let next: TlsMaterial;
    try {
      next = loadTls(this.config)!;
      this.apply(next);
    } catch (err) {
      this.report({ error: err as Error });
      throw err;
    }
    this.current = next;
    this.report({ reloaded: next });
    return "reloaded";
  }

  /** Checks every `everyMs` (0: never); each outcome goes to `report`. */
  start(everyMs: number): void {
    if (everyMs <= 0) return;
    this.timer = setInterval(() => {
      try {
        this.check();
      } catch {
        // Reported; the next check tries again.
      }
    }, everyMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
