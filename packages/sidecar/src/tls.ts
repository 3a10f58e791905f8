// TLS material for the sidecar's servers (gRPC and the HTTP port): read once at
// start and checked before the engine loads or anything listens, so a wrong
// path, a key of another certificate or an expired certificate is a clear
// ConfigError, not a handshake every client fails later.
import { createPrivateKey, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { ConfigError, type SidecarConfig } from "./config.js";

export interface TlsMaterial {
  /** PEM certificate chain, the server's own first. */
  cert: Buffer;
  key: Buffer;
  /** PEM CA bundle client certificates must chain to (mutual TLS). */
  clientCa?: Buffer;
}

function read(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ConfigError(`${what} ${path}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

function certificate(pem: Buffer, path: string, what: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (err) {
    throw new ConfigError(`${what} ${path}: not a PEM certificate (${(err as Error).message})`);
  }
}

/** The config's TLS files, checked; undefined when TLS is off. */
export function loadTls(config: Pick<SidecarConfig, "tlsCert" | "tlsKey" | "tlsClientCa">, now = new Date()): TlsMaterial | undefined {
  if (!config.tlsCert) return undefined;
  const cert = read(config.tlsCert, "--tls-cert");
  const key = read(config.tlsKey, "--tls-key");
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
  if (!config.tlsClientCa) return { cert, key };
  const clientCa = read(config.tlsClientCa, "--tls-client-ca");
  certificate(clientCa, config.tlsClientCa, "--tls-client-ca");
  return { cert, key, clientCa };
}
