// The secret the sidecars of one deployment share so a session can move
// between them: it seals, inside each resume token, the URL of the sidecar that
// holds the session (a client can neither read nor forge it, so a token can
// make a sidecar call only its peers), and it authenticates the Take call one
// sidecar makes to another.
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes, timingSafeEqual } from "node:crypto";

/** Shortest peer key accepted, in characters. */
export const MIN_PEER_KEY_CHARS = 32;

/** `grpc://host:port` or `grpcs://host:port`: the gRPC target and whether it speaks TLS. */
export function parsePeerUrl(url: string): { target: string; tls: boolean } | undefined {
  const match = /^(grpcs?):\/\/((?:[^/\s:[\]]+|\[[0-9a-fA-F:.]+\]):\d{1,5})\/?$/.exec(url);
  if (!match) return undefined;
  return { target: match[2]!, tls: match[1] === "grpcs" };
}

const SALT = "microturn.v1.handoff";
const IV_BYTES = 12;
const TAG_BYTES = 16;

function derive(secret: string, purpose: string): Buffer {
  return Buffer.from(hkdfSync("sha256", secret, SALT, purpose, 32));
}

interface DerivedKeys {
  seal: Buffer;
  mac: Buffer;
}

export class PeerKey {
  /** The key in use first (it seals and proves), then the others still accepted. */
  private readonly keys: DerivedKeys[];

  /**
   * `secret` seals new tokens and proves Takes; `accepted` are more secrets
   * whose tokens and proofs are still taken, for changing the key across a
   * deployment without a pause (deployment.md, "Changing the peer key").
   */
  constructor(secret: string, accepted: readonly string[] = []) {
    this.keys = [secret, ...accepted].map((s) => ({ seal: derive(s, "owner seal"), mac: derive(s, "take") }));
  }

  /**
   * A resume token for a session held by the sidecar at `ownerUrl`: 24 random
   * bytes (what finds the session there), a dot, and the owner sealed with
   * AES-256-GCM bound to those bytes.
   */
  mintToken(ownerUrl: string): string {
    const secret = randomBytes(24).toString("base64url");
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv("aes-256-gcm", this.keys[0]!.seal, iv);
    cipher.setAAD(Buffer.from(secret));
    const sealed = Buffer.concat([iv, cipher.update(ownerUrl, "utf8"), cipher.final(), cipher.getAuthTag()]);
    return `${secret}.${sealed.toString("base64url")}`;
  }

  /** The URL of the sidecar holding the token's session; undefined for a token none of the keys sealed. */
  ownerOf(token: string): string | undefined {
    const dot = token.indexOf(".");
    if (dot <= 0) return undefined;
    const sealed = Buffer.from(token.slice(dot + 1), "base64url");
    if (sealed.length <= IV_BYTES + TAG_BYTES) return undefined;
    for (const key of this.keys) {
      try {
        const decipher = createDecipheriv("aes-256-gcm", key.seal, sealed.subarray(0, IV_BYTES));
        decipher.setAAD(Buffer.from(token.slice(0, dot)));
        decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
        return Buffer.concat([decipher.update(sealed.subarray(IV_BYTES, sealed.length - TAG_BYTES)), decipher.final()]).toString("utf8");
      } catch {
        // Not this key's seal: the next one may open it.
      }
    }
    return undefined;
  }

  /** What a peer sends with Take for `token` (metadata x-microturn-peer): proof that it holds the key. */
  takeProof(token: string): string {
    return mac(this.keys[0]!, token);
  }

  checkTakeProof(token: string, proof: string | undefined): boolean {
    if (proof === undefined) return false;
    const given = Buffer.from(proof);
    return this.keys.some((key) => {
      const expected = Buffer.from(mac(key, token));
      return given.length === expected.length && timingSafeEqual(given, expected);
    });
  }
}

function mac(key: DerivedKeys, token: string): string {
  return createHmac("sha256", key.mac).update(token).digest("base64url");
}
