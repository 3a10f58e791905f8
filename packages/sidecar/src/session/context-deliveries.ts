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

/** A result's delivery mode: its own, else the session's default, else when_idle. */
export function resolveDelivery(delivery: DeliveryMode, sessionDefault: DeliveryMode): DeliveryMode {
  if (delivery !== DeliveryMode.DELIVERY_MODE_UNSPECIFIED && delivery !== DeliveryMode.UNRECOGNIZED) return delivery;
  return sessionDefault === DeliveryMode.DELIVERY_MODE_UNSPECIFIED || sessionDefault === DeliveryMode.UNRECOGNIZED ? DeliveryMode.DELIVERY_MODE_WHEN_IDLE : sessionDefault;
}

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
    this.pending.push({ item: { source: ContextSource.CONTEXT_SOURCE_TOOL, text: `[tool ${name} result] ${text}`, refId: name }, delivery: DeliveryMode.DELIVERY_MODE_INTERRUPT, readyAtMs });
  }

  /** A finished (done, failed, timed out) background task, delivered per `delivery`. */
  addBackgroundResult(update: BackgroundUpdate, delivery: DeliveryMode, readyAtMs: number): void {
    const body = update.status === TaskStatus.TASK_STATUS_DONE ? update.content : `failed: ${update.errorMessage}`;
    this.pending.push({
      item: { source: ContextSource.CONTEXT_SOURCE_BACKGROUND, text: `[background ${update.taskId}${DELIVERY_NOTE[delivery]}] ${body}`, refId: update.taskId },
      delivery,
      update,
      readyAtMs,
    });
  }

  /**
   * Removes and returns what is due at this boundary: interrupt and silent
   * items always; when_idle ones when neither side is speaking, or once they
   * have waited WHEN_IDLE_MAX_WAIT_MS. `delivered` gets each background update.
   */
  take(boundary: Boundary, delivered: (update: BackgroundUpdate) => void): ContextItem[] {
    const busy = boundary.userActive || boundary.modelSpeaking;
    const due: ContextItem[] = [];
    for (let i = 0; i < this.pending.length; ) {
      const p = this.pending[i]!;
      if (p.delivery === DeliveryMode.DELIVERY_MODE_WHEN_IDLE && busy && boundary.startMs - p.readyAtMs < WHEN_IDLE_MAX_WAIT_MS) {
        i++;
        continue;
      }
      this.pending.splice(i, 1);
      due.push(p.item);
      if (p.update) delivered({ ...p.update, content: "", deliveredAtSeq: boundary.seq });
    }
    return due;
  }
}
