import * as grpc from "@grpc/grpc-js";
import { ErrorCode, HandoffService, SettleResult, type SettleRequest, type SettleResponse } from "@microturn/protocol";
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
    // A settlement to it is not sent, and says why, rather than throwing out of the batch.
    expect(await client.settle("http://elsewhere:80", "t", "h")).toMatchObject({ result: "unreachable", why: expect.stringContaining("not a grpc://") });
    client.close();
  });

  it("reports a Settle that reached no owner as unreachable, not refused", async () => {
    const key = new PeerKey("a peer key of at least thirty-two characters");
    const client = new PeerClient({ key, selfUrl: "grpc://127.0.0.1:1", timeoutMs: 200 });
    const owner = `grpc://127.0.0.1:${await freePort()}`;
    expect(await client.settle(owner, key.mintToken(owner), "h")).toMatchObject({ result: "unreachable", why: expect.stringMatching(/UNAVAILABLE|DEADLINE_EXCEEDED/) });
    client.close();
  });

  it("confirms the settlements made to one owner in one turn of the event loop in one call, each with its own proof and outcome", async () => {
    const key = new PeerKey("a peer key of at least thirty-two characters");
    const calls: SettleRequest[] = [];
    const server = new grpc.Server();
    const results = { a: SettleResult.SETTLE_RESULT_SETTLED, b: SettleResult.SETTLE_RESULT_REFUSED, c: SettleResult.SETTLE_RESULT_UNAUTHENTICATED, d: SettleResult.SETTLE_RESULT_UNKNOWN };
    server.addService(HandoffService, {
      take: (_call: unknown, callback: grpc.sendUnaryData<never>) => callback({ code: grpc.status.UNIMPLEMENTED }),
      settle: (call: grpc.ServerUnaryCall<SettleRequest, SettleResponse>, callback: grpc.sendUnaryData<SettleResponse>) => {
        calls.push(call.request);
        // No outcome for the last one: a reply that says nothing of it settles nothing.
        const outcomes = call.request.settlements.slice(0, 4).map((s) => ({ result: results[s.handoverId as keyof typeof results], reason: `because ${s.handoverId}` }));
        callback(null, { outcomes });
      },
    });
    const port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
    const owner = `grpc://127.0.0.1:${port}`;
    const client = new PeerClient({ key, selfUrl: "grpc://127.0.0.1:1" });
    const tokens = ["a", "b", "c", "d", "e"].map(() => key.mintToken(owner));
    const outcomes = await Promise.all(["a", "b", "c", "d", "e"].map((id, i) => client.settle(owner, tokens[i]!, id)));
    expect(calls).toHaveLength(1);
    expect(calls[0]!.takerUrl).toBe("grpc://127.0.0.1:1");
    expect(calls[0]!.settlements.map((s) => key.checkTakeProof(s.resumeToken, s.proof))).toEqual([true, true, true, true, true]);
    expect(outcomes).toEqual([
      { result: "settled" },
      { result: "refused", why: "because b" },
      { result: "refused", why: "because c" },
      { result: "unknown", why: "because d" },
      { result: "unreachable", why: expect.stringContaining("gave no outcome") },
    ]);
    // A settlement made later goes in a call of its own.
    expect(await client.settle(owner, tokens[0]!, "a")).toEqual({ result: "settled" });
    expect(calls).toHaveLength(2);
    client.close();
    server.forceShutdown();
  });
});
