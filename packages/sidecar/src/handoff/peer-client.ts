// The taking side of a move: calls Handoff.Take and Handoff.Settle on the
// sidecar a resume token names, one channel per peer, and turns a Take's
// failures into the SessionFault the resuming client is told.
import * as grpc from "@grpc/grpc-js";
import { ErrorCode, HandoffClient, SettleResult as SettleOutcomeResult, type SessionSnapshot, type TakeResponse } from "@microturn/protocol";
import { SessionFault } from "../errors.js";
import { parsePeerUrl, type PeerKey } from "./peer-key.js";

/** Metadata key of the proof that the caller holds the peer key. */
export const PEER_PROOF_HEADER = "x-microturn-peer";

/** How long a Take may take by default: the owner first lets the session's queued micro-turns finish (up to 2 s). */
export const TAKE_TIMEOUT_MS = 5_000;

export interface PeerTls {
  /** CA bundle peers' certificates chain to; the system's CAs when absent. */
  ca?: Buffer;
  /** This sidecar's certificate and key, shown to peers that ask for one (mutual TLS). */
  cert?: Buffer;
  key?: Buffer;
}

export interface PeerClientOptions {
  key: PeerKey;
  /** This sidecar's advertised URL, sent for the owner's log. */
  selfUrl: string;
  timeoutMs?: number;
  tls?: PeerTls;
}

/**
 * What a Take gets: the session's state, or the sidecar it moved on to. An
 * empty `handoverId` comes from an owner from before Settle, which kept no
 * copy: there is nothing to confirm.
 */
export type TakeResult = { snapshot: SessionSnapshot; handoverId: string } | { movedTo: string };

/**
 * How a settlement went: the owner let go of its copy (`settled`), the
 * session went to another taker or back to the owner meanwhile (`refused`),
 * the owner knows no such hand-over (`unknown`: it restarted, or its record
 * expired; nobody can take the session from it then), or the call failed
 * (`unreachable`: worth trying again while the lease lasts).
 */
export type SettleResult = { result: "settled" } | { result: "refused" | "unknown" | "unreachable"; why: string };

/** Settlements sent in one Settle call at most. */
export const MAX_SETTLEMENTS_PER_CALL = 256;

interface PendingSettlement {
  token: string;
  handoverId: string;
  resolve: (result: SettleResult) => void;
}

/** Channels kept open to peers at most. */
export const MAX_PEER_CHANNELS = 32;

const STATUS_FAULTS: Partial<Record<grpc.status, { code: ErrorCode; retryable: boolean }>> = {
  [grpc.status.NOT_FOUND]: { code: ErrorCode.ERROR_CODE_NOT_FOUND, retryable: false },
  [grpc.status.FAILED_PRECONDITION]: { code: ErrorCode.ERROR_CODE_FAILED_PRECONDITION, retryable: false },
  [grpc.status.DEADLINE_EXCEEDED]: { code: ErrorCode.ERROR_CODE_TIMEOUT, retryable: true },
  [grpc.status.UNAVAILABLE]: { code: ErrorCode.ERROR_CODE_TIMEOUT, retryable: true },
  [grpc.status.RESOURCE_EXHAUSTED]: { code: ErrorCode.ERROR_CODE_RESOURCE_EXHAUSTED, retryable: true },
};

export class PeerClient {
  private readonly clients = new Map<string, HandoffClient>();
  /** Settlements waiting for this turn of the event loop to end, by owner. */
  private readonly settling = new Map<string, PendingSettlement[]>();
  private readonly timeoutMs: number;

  constructor(private readonly opts: PeerClientOptions) {
    this.timeoutMs = opts.timeoutMs ?? TAKE_TIMEOUT_MS;
  }

  /** Takes the session behind `token` from the sidecar at `ownerUrl`; a SessionFault (fatal to the resume) when it cannot. */
  async take(ownerUrl: string, token: string, lastEventSeq: number): Promise<TakeResult> {
    const client = this.client(ownerUrl);
    const response = await new Promise<TakeResponse>((resolve, reject) =>
      client.take(
        { resumeToken: token, lastEventSeq, takerUrl: this.opts.selfUrl, settles: true },
        this.proof(token),
        { deadline: Date.now() + this.timeoutMs },
        (err, res) => (err ? reject(this.fault(ownerUrl, err)) : resolve(res)),
      ),
    );
    if (response.movedTo) return { movedTo: response.movedTo };
    if (!response.snapshot) throw new SessionFault(ErrorCode.ERROR_CODE_INTERNAL, `sidecar ${ownerUrl} handed over no session state`, { fatal: true });
    return { snapshot: response.snapshot, handoverId: response.handoverId };
  }

  /**
   * Confirms to the sidecar at `ownerUrl` that this one holds the session it
   * handed over as `handoverId`. Settlements to one owner made in the same
   * turn of the event loop go in one call (many sessions move at once in a
   * rolling restart).
   */
  settle(ownerUrl: string, token: string, handoverId: string): Promise<SettleResult> {
    return new Promise((resolve) => {
      let batch = this.settling.get(ownerUrl);
      if (!batch) {
        batch = [];
        this.settling.set(ownerUrl, batch);
        setImmediate(() => this.flushSettlements(ownerUrl, batch!));
      }
      batch.push({ token, handoverId, resolve });
      if (batch.length >= MAX_SETTLEMENTS_PER_CALL) this.flushSettlements(ownerUrl, batch);
    });
  }

  private flushSettlements(ownerUrl: string, batch: PendingSettlement[]): void {
    if (this.settling.get(ownerUrl) !== batch) return;
    this.settling.delete(ownerUrl);
    const settlements = batch.map(({ token, handoverId }) => ({ resumeToken: token, handoverId, proof: this.opts.key.takeProof(token) }));
    let client: HandoffClient;
    try {
      client = this.client(ownerUrl);
    } catch (err) {
      // (A URL a Take to the same owner would have refused first.)
      for (const { resolve } of batch) resolve({ result: "unreachable", why: (err as Error).message });
      return;
    }
    client.settle({ settlements, takerUrl: this.opts.selfUrl }, new grpc.Metadata(), { deadline: Date.now() + this.timeoutMs }, (err, response) => {
      batch.forEach(({ resolve }, i) => {
        if (err) return resolve({ result: "unreachable", why: `${grpc.status[err.code] ?? err.code}: ${err.details}` });
        const outcome = response.outcomes[i];
        switch (outcome?.result) {
          case SettleOutcomeResult.SETTLE_RESULT_SETTLED:
            return resolve({ result: "settled" });
          // A proof the owner does not accept settles nothing: the owner keeps its copy, so this sidecar must let go.
          case SettleOutcomeResult.SETTLE_RESULT_REFUSED:
          case SettleOutcomeResult.SETTLE_RESULT_UNAUTHENTICATED:
            return resolve({ result: "refused", why: outcome.reason });
          case SettleOutcomeResult.SETTLE_RESULT_UNKNOWN:
            return resolve({ result: "unknown", why: outcome.reason });
          default:
            return resolve({ result: "unreachable", why: `sidecar ${ownerUrl} gave no outcome for this settlement` });
        }
      });
    });
  }

  /** Peers with a channel open now, least recently used first. */
  get peers(): string[] {
    return [...this.clients.keys()];
  }

  close(): void {
    // Settlements not sent yet go nowhere now (the sidecar is stopping).
    for (const batch of this.settling.values()) for (const { resolve } of batch) resolve({ result: "unreachable", why: "this sidecar is stopping" });
    this.settling.clear();
    for (const client of this.clients.values()) client.close();
    this.clients.clear();
  }

  private client(ownerUrl: string): HandoffClient {
    let client = this.clients.get(ownerUrl);
    if (client) {
      // Most recently used last: the peer unused longest goes first when there are too many.
      this.clients.delete(ownerUrl);
      this.clients.set(ownerUrl, client);
      return client;
    }
    const peer = parsePeerUrl(ownerUrl);
    // Only this deployment's peer key seals owners, so this is a peer misconfigured, not a client's doing.
    if (!peer) throw new SessionFault(ErrorCode.ERROR_CODE_INTERNAL, `the session's sidecar advertises "${ownerUrl}", not a grpc:// or grpcs:// URL`, { fatal: true });
    const tls = this.opts.tls;
    const credentials = peer.tls ? grpc.credentials.createSsl(tls?.ca ?? null, tls?.key ?? null, tls?.cert ?? null) : grpc.credentials.createInsecure();
    client = new HandoffClient(peer.target, credentials, { "grpc.max_receive_message_length": 64 * 1024 * 1024 });
    this.clients.set(ownerUrl, client);
    // Peers come and go (each rollout brings new addresses): channels to the ones unused longest are closed.
    for (const [url, old] of this.clients) {
      if (this.clients.size <= MAX_PEER_CHANNELS) break;
      old.close();
      this.clients.delete(url);
    }
    return client;
  }

  private proof(token: string): grpc.Metadata {
    const metadata = new grpc.Metadata();
    metadata.set(PEER_PROOF_HEADER, this.opts.key.takeProof(token));
    return metadata;
  }

  private fault(ownerUrl: string, err: grpc.ServiceError): SessionFault {
    const mapped = STATUS_FAULTS[err.code as grpc.status];
    const code = mapped?.code ?? ErrorCode.ERROR_CODE_INTERNAL;
    const what =
      err.code === grpc.status.UNAUTHENTICATED
        ? `sidecar ${ownerUrl} refused this one's peer key (the sidecars must share MICROTURN_PEER_KEY)`
        : code === ErrorCode.ERROR_CODE_TIMEOUT
          ? `the sidecar holding this session (${ownerUrl}) did not answer within ${this.timeoutMs} ms: ${err.details}`
          : `sidecar ${ownerUrl} could not hand the session over: ${err.details}`;
    return new SessionFault(code, what, { retryable: mapped?.retryable ?? false, fatal: true, cause: err });
  }
}
