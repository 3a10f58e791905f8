import { describe, expect, it } from "vitest";
import { parsePeerUrl, PeerKey } from "./peer-key.js";

const key = new PeerKey("the deployment's peer key, 32+ characters");

describe("PeerKey", () => {
  it("seals the owner into each token, readable only with the same key", () => {
    const token = key.mintToken("grpc://10.0.0.7:50051");
    expect(key.ownerOf(token)).toBe("grpc://10.0.0.7:50051");
    expect(token).not.toContain("10.0.0.7");
    expect(key.mintToken("grpc://10.0.0.7:50051")).not.toBe(token);
    expect(new PeerKey("another deployment's key, 32+ chars").ownerOf(token)).toBeUndefined();
  });

  it("reads nothing from a token that was altered, cut, or had its seal moved onto another", () => {
    const token = key.mintToken("grpc://a:1");
    const [secret, seal] = token.split(".") as [string, string];
    const flipped = seal.slice(0, 10) + (seal[10] === "A" ? "B" : "A") + seal.slice(11);
    expect(key.ownerOf(`${secret}.${flipped}`)).toBeUndefined();
    expect(key.ownerOf(secret)).toBeUndefined();
    expect(key.ownerOf(`${secret}.`)).toBeUndefined();
    expect(key.ownerOf(`.${seal}`)).toBeUndefined();
    const other = key.mintToken("grpc://b:1").split(".")[0]!;
    expect(key.ownerOf(`${other}.${seal}`)).toBeUndefined();
  });

  it("proves a caller holds the key for one token", () => {
    const proof = key.takeProof("t1");
    expect(key.checkTakeProof("t1", proof)).toBe(true);
    expect(key.checkTakeProof("t2", proof)).toBe(false);
    expect(key.checkTakeProof("t1", undefined)).toBe(false);
    expect(key.checkTakeProof("t1", "short")).toBe(false);
    expect(key.checkTakeProof("t1", new PeerKey("another deployment's key, 32+ chars").takeProof("t1"))).toBe(false);
  });
});

describe("changing the key", () => {
  const old = new PeerKey("the old key of this deployment, 32+ chars");
  const next = "the next key of this deployment, 32+ chars";

  it("reads tokens and takes proofs of the keys it accepts, and seals and proves with the one in use", () => {
    // Step 1: every sidecar accepts the next key while it still uses the old one.
    const step1 = new PeerKey("the old key of this deployment, 32+ chars", [next]);
    // Step 2: every sidecar uses the next key and still accepts the old one.
    const step2 = new PeerKey(next, ["the old key of this deployment, 32+ chars"]);
    const done = new PeerKey(next);
    // A step-1 sidecar and a step-2 one understand each other both ways...
    expect(step1.ownerOf(step2.mintToken("grpc://b:1"))).toBe("grpc://b:1");
    expect(step2.ownerOf(step1.mintToken("grpc://a:1"))).toBe("grpc://a:1");
    expect(step1.checkTakeProof("t", step2.takeProof("t"))).toBe(true);
    expect(step2.checkTakeProof("t", step1.takeProof("t"))).toBe(true);
    // ...and so do the old sidecars with step 1, and step 2 with the ones that are done.
    expect(old.ownerOf(step1.mintToken("grpc://a:1"))).toBe("grpc://a:1");
    expect(step1.ownerOf(old.mintToken("grpc://a:1"))).toBe("grpc://a:1");
    expect(done.ownerOf(step2.mintToken("grpc://b:1"))).toBe("grpc://b:1");
    expect(done.checkTakeProof("t", step2.takeProof("t"))).toBe(true);
    // Once done, the old key opens nothing.
    expect(done.ownerOf(old.mintToken("grpc://a:1"))).toBeUndefined();
    expect(done.checkTakeProof("t", old.takeProof("t"))).toBe(false);
  });
});

describe("parsePeerUrl", () => {
  it("takes grpc:// and grpcs:// with a host and port", () => {
    expect(parsePeerUrl("grpc://10.0.0.7:50051")).toEqual({ target: "10.0.0.7:50051", tls: false });
    expect(parsePeerUrl("grpcs://sidecar-0.sidecars.default.svc:50051/")).toEqual({ target: "sidecar-0.sidecars.default.svc:50051", tls: true });
    expect(parsePeerUrl("grpc://[fd00::7]:50051")).toEqual({ target: "[fd00::7]:50051", tls: false });
  });

  it("refuses anything else", () => {
    for (const url of ["http://a:1", "grpc://a", "grpc://a:1/path", "a:1", "grpc://:1", "grpc://a b:1", ""]) expect(parsePeerUrl(url), url).toBeUndefined();
  });
});
