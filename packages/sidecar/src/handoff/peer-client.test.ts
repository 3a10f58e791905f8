import { ErrorCode } from "@microturn/protocol";
import { describe, expect, it } from "vitest";
import { MAX_PEER_CHANNELS, PeerClient } from "./peer-client.js";
import { PeerKey } from "./peer-key.js";
import { freePort } from "./testing/tcp-balancer.js";

describe("PeerClient", () => {
  it("keeps channels to the peers used most lately, closing the rest", async () => {
    const key = new PeerKey("a peer key of at least thirty-two characters");
    const client = new PeerClient({ key, selfUrl: "grpc://127.0.0.1:1", timeoutMs: 50 });
    // Nothing listens on these ports: each take fails fast, but opens (or reuses) the peer's channel.
    const take = (port: number) => client.take(`grpc://127.0.0.1:${port}`, key.mintToken(`grpc://127.0.0.1:${port}`), 0).catch((err: unknown) => err);
    for (let i = 0; i < MAX_PEER_CHANNELS + 5; i++) await take(1 + i);
    expect(client.peers).toHaveLength(MAX_PEER_CHANNELS);
    expect(client.peers[0]).toBe("grpc://127.0.0.1:6");
    await take(6);
    expect(client.peers.at(-1)).toBe("grpc://127.0.0.1:6");
    client.close();
    expect(client.peers).toEqual([]);
  });

  it("refuses an owner URL a peer should never have advertised", async () => {
    const key = new PeerKey("a peer key of at least thirty-two characters");
    const client = new PeerClient({ key, selfUrl: "grpc://127.0.0.1:1" });
    await expect(client.take("http://elsewhere:80", "t", 0)).rejects.toMatchObject({ code: ErrorCode.ERROR_CODE_INTERNAL, fatal: true });
    client.close();
  });

  it("reports a Settle the owner could not answer as unanswered, not refused: the taker goes on with the session", async () => {
    const key = new PeerKey("a peer key of at least thirty-two characters");
    const client = new PeerClient({ key, selfUrl: "grpc://127.0.0.1:1", timeoutMs: 200 });
    const owner = `grpc://127.0.0.1:${await freePort()}`;
    expect(await client.settle(owner, key.mintToken(owner), "h")).toMatchObject({ result: "unanswered", why: expect.stringMatching(/UNAVAILABLE|DEADLINE_EXCEEDED/) });
    client.close();
  });
});
