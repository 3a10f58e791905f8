// A moving session on the wire (handoff.proto's SessionSnapshot) and in the
// session layer (MovedSession): the one place that maps one onto the other.
import type { ServerEvent, SessionConfig, SessionSnapshot } from "@microturn/protocol";
import type { MovedSession } from "../session/interaction-session.js";
import type { ConversationEntry } from "../session/ports.js";

const ROLES: ReadonlySet<string> = new Set<ConversationEntry["role"]>(["user", "assistant", "tool", "background", "system"]);

export interface SnapshotParts {
  sessionId: string;
  config: SessionConfig;
  /** Events after the client's last_event_seq. */
  events: ServerEvent[];
  lastEventSeq: number;
  moved: MovedSession;
  /** Recording files the session has so far (0: not being recorded). */
  recordingParts: number;
}

export function toSnapshot({ sessionId, config, events, lastEventSeq, moved, recordingParts }: SnapshotParts): SessionSnapshot {
  return {
    sessionId,
    config,
    nextInputSeq: moved.nextSeq,
    inputTimeMs: moved.inputTimeMs,
    chunks: moved.chunks,
    conversation: moved.conversation.map((entry) => ({ role: entry.role, text: entry.text, startMs: entry.startMs, ...(entry.seq !== undefined ? { seq: entry.seq } : {}) })),
    events,
    lastEventSeq,
    pendingContext: moved.pending.map((p) => ({ item: p.item, delivery: p.delivery, readyAtMs: p.readyAtMs, ...(p.update ? { update: p.update } : {}) })),
    toolCalls: moved.pendingCalls,
    // uint32 on the wire: a deadline a model asked for past it would wrap.
    tasks: moved.tasks.map((t) => ({ ...t, remainingMs: Math.min(t.remainingMs, 0xffffffff) })),
    playedUpToMs: moved.playedUpToMs,
    toolCallsMade: moved.callsMade,
    taskIdsMade: moved.taskIdsMade,
    outputEndMs: moved.outputEndMs,
    queuedInput: moved.queuedInput,
    recordingParts,
  };
}

/** The snapshot a peer sent, checked where the session layer relies on it; throws a message naming what is wrong. */
export function fromSnapshot(snapshot: SessionSnapshot): SnapshotParts {
  if (!snapshot.sessionId) throw new Error("snapshot has no session id");
  if (!snapshot.config) throw new Error("snapshot has no session config");
  for (const event of snapshot.events) {
    if (event.eventSeq > snapshot.lastEventSeq) throw new Error(`snapshot event ${event.eventSeq} is past its last event seq ${snapshot.lastEventSeq}`);
  }
  const conversation = snapshot.conversation.map((line): ConversationEntry => {
    if (!ROLES.has(line.role)) throw new Error(`snapshot conversation line has unknown role "${line.role}"`);
    return { role: line.role as ConversationEntry["role"], text: line.text, startMs: line.startMs, ...(line.seq !== undefined ? { seq: line.seq } : {}) };
  });
  return {
    sessionId: snapshot.sessionId,
    config: snapshot.config,
    events: snapshot.events,
    lastEventSeq: snapshot.lastEventSeq,
    moved: {
      nextSeq: snapshot.nextInputSeq,
      inputTimeMs: snapshot.inputTimeMs,
      chunks: snapshot.chunks,
      conversation,
      pending: snapshot.pendingContext.flatMap((p) => (p.item ? [{ item: p.item, delivery: p.delivery, readyAtMs: p.readyAtMs, ...(p.update ? { update: p.update } : {}) }] : [])),
      pendingCalls: snapshot.toolCalls,
      callsMade: snapshot.toolCallsMade,
      tasks: snapshot.tasks,
      taskIdsMade: snapshot.taskIdsMade,
      playedUpToMs: snapshot.playedUpToMs,
      outputEndMs: snapshot.outputEndMs,
      queuedInput: snapshot.queuedInput,
    },
    recordingParts: snapshot.recordingParts,
  };
}
