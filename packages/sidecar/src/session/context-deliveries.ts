// Background and tool results waiting for a micro-turn boundary, and the rule
// that picks which are due at a boundary (ARCHITECTURE.md section 3, delivery modes).
import { ContextSource, DeliveryMode, TaskStatus, type BackgroundUpdate, type ContextItem } from "@microturn/protocol";

/** A when_idle result waits at most this much input time for a pause, then is delivered anyway. */
export const WHEN_IDLE_MAX_WAIT_MS = 5000;

const DELIVERY_NOTE: Record<DeliveryMode, string> = {
  [DeliveryMode.DELIVERY_MODE_UNSPECIFIED]: "",
  [DeliveryMode.DELIVERY_MODE_INTERRUPT]: " (tell the user now)",
  [DeliveryMode.DELIVERY_MODE_WHEN_IDLE]: " (tell the user at a natural pause)",
  [DeliveryMode.DELIVERY_MODE_SILENT]: " (context only; mention it only if asked)",
  [DeliveryMode.UNRECOGNIZED]: "",
};

const CHOSEN_MODES: ReadonlySet<DeliveryMode> = new Set([DeliveryMode.DELIVERY_MODE_INTERRUPT, DeliveryMode.DELIVERY_MODE_WHEN_IDLE, DeliveryMode.DELIVERY_MODE_SILENT]);

/**
 * A result's delivery mode: its own, else the session's default, else
 * when_idle. A number this sidecar does not know (a newer client's mode) counts
 * as not set, as UNRECOGNIZED does: a recording, which writes both as
 * UNRECOGNIZED, replays them the same way.
 */
export function resolveDelivery(delivery: DeliveryMode, sessionDefault: DeliveryMode): DeliveryMode {
  if (CHOSEN_MODES.has(delivery)) return delivery;
  return CHOSEN_MODES.has(sessionDefault) ? sessionDefault : DeliveryMode.DELIVERY_MODE_WHEN_IDLE;
}

/**
 * What entered the model's context at each boundary of a recorded session, by
 * input seq (`microturn replay`): a session given one takes its context from
 * here instead of from the results that arrive, so the model reads the same
 * input at the same micro-turn however fast the replay's tools and background
 * model answer.
 */
export type ContextScript = ReadonlyMap<number, readonly ContextItem[]>;

export interface PendingDelivery {
  item: ContextItem;
  delivery: DeliveryMode;
  /** Input time at which it became deliverable. */
  readyAtMs: number;
  /** The BackgroundUpdate to send once delivered. */
  update?: BackgroundUpdate;
}

/** The state of the conversation at a boundary, as delivery modes see it. */
export interface Boundary {
  seq: number;
  startMs: number;
  userActive: boolean;
  modelSpeaking: boolean;
}

export class ContextDeliveries {
  private readonly pending: PendingDelivery[] = [];
  /**
   * With a script: recorded items delivered before the result they stand for
   * arrived here, by source and ref id; that result is dropped when it comes.
   */
  private readonly owed = new Map<string, number>();

  constructor(private readonly script?: ContextScript) {}

  /** What waits for a boundary, oldest first (copies): what a session that moves takes along. */
  waiting(): PendingDelivery[] {
    return this.pending.map((p) => ({ ...p }));
  }

  /** Results that waited on another sidecar before the session moved here. */
  restore(items: readonly PendingDelivery[]): void {
    this.pending.push(...items.map((p) => ({ ...p })));
  }

  /** A tool's result: context at the next boundary. */
  addToolResult(name: string, text: string, readyAtMs: number): void {
    this.add({ item: { source: ContextSource.CONTEXT_SOURCE_TOOL, text: `[tool ${name} result] ${text}`, refId: name }, delivery: DeliveryMode.DELIVERY_MODE_INTERRUPT, readyAtMs });
  }

  /** A finished (done, failed, timed out) background task, delivered per `delivery`. */
  addBackgroundResult(update: BackgroundUpdate, delivery: DeliveryMode, readyAtMs: number): void {
    const body = update.status === TaskStatus.TASK_STATUS_DONE ? update.content : `failed: ${update.errorMessage}`;
    this.add({
      item: { source: ContextSource.CONTEXT_SOURCE_BACKGROUND, text: `[background ${update.taskId}${DELIVERY_NOTE[delivery]}] ${body}`, refId: update.taskId },
      delivery,
      update,
      readyAtMs,
    });
  }

  /**
   * Removes and returns what is due at this boundary: interrupt and silent
   * items always; when_idle ones when neither side is speaking, or once they
   * have waited WHEN_IDLE_MAX_WAIT_MS. The caller delivers them (each one's
   * `update`, with deliveredAtSeq, tells the client), or gives them back.
   */
  take(boundary: Boundary): PendingDelivery[] {
    if (this.script) return this.takeScripted(boundary.seq);
    const busy = boundary.userActive || boundary.modelSpeaking;
    const due: PendingDelivery[] = [];
    for (let i = 0; i < this.pending.length; ) {
      const p = this.pending[i]!;
      if (p.delivery === DeliveryMode.DELIVERY_MODE_WHEN_IDLE && busy && boundary.startMs - p.readyAtMs < WHEN_IDLE_MAX_WAIT_MS) {
        i++;
        continue;
      }
      this.pending.splice(i, 1);
      due.push(p);
    }
    return due;
  }

  /**
   * Results taken for a micro-turn that failed before they reached the model:
   * first in line again, each under its own delivery mode. With a script the
   * recording decides, and they are not given back.
   */
  giveBack(taken: readonly PendingDelivery[]): void {
    if (!this.script) this.pending.unshift(...taken);
  }

  private add(delivery: PendingDelivery): void {
    const key = scriptKey(delivery.item);
    const owed = this.owed.get(key) ?? 0;
    if (owed === 0) this.pending.push(delivery);
    else if (owed === 1) this.owed.delete(key);
    else this.owed.set(key, owed - 1);
  }

  /**
   * The recorded items of this boundary, whatever has arrived. Each stands for
   * the first waiting result of its source and ref id, which goes with it (its
   * client hears it delivered); one not here yet is dropped when it comes.
   */
  private takeScripted(seq: number): PendingDelivery[] {
    const items = this.script!.get(seq) ?? [];
    return items.map((item) => {
      const key = scriptKey(item);
      const i = this.pending.findIndex((p) => scriptKey(p.item) === key);
      if (i < 0) this.owed.set(key, (this.owed.get(key) ?? 0) + 1);
      const live = i < 0 ? undefined : this.pending.splice(i, 1)[0]!;
      return { item: { ...item }, delivery: DeliveryMode.DELIVERY_MODE_INTERRUPT, readyAtMs: live?.readyAtMs ?? 0, ...(live?.update ? { update: live.update } : {}) };
    });
  }
}

const scriptKey = (item: ContextItem): string => `${item.source}:${item.refId}`;
