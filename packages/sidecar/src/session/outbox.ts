// Numbers every server event of a session and keeps the recent ones, so a
// client that lost its stream can resume and receive exactly what it missed.
import type { ServerEvent } from "@microturn/protocol";
import type { ServerPayload } from "./ports.js";

export interface EventSink {
  send(event: ServerEvent): void;
}

/** Events kept past the capacity before the oldest are dropped at once. */
const TRIM_BATCH = 256;

export class Outbox {
  private readonly kept: ServerEvent[] = [];
  private seq = 0;
  private sink: EventSink | undefined;

  /** Keeps at least the last `capacity` events (up to capacity + TRIM_BATCH). */
  constructor(private readonly capacity = 4096) {}

  get lastEventSeq(): number {
    return this.seq;
  }

  get attached(): boolean {
    return this.sink !== undefined;
  }

  push(payload: ServerPayload): ServerEvent {
    const event: ServerEvent = { eventSeq: ++this.seq, event: payload };
    this.kept.push(event);
    // Trimmed in batches: shifting a full array on every event would copy it each time.
    if (this.kept.length >= this.capacity + TRIM_BATCH) this.kept.splice(0, this.kept.length - this.capacity);
    this.sink?.send(event);
    return event;
  }

  /** Attaches a stream and sends it every kept event after `afterSeq`; false when some were already dropped. */
  attach(sink: EventSink, afterSeq?: number): boolean {
    this.sink = sink;
    if (afterSeq === undefined) return true;
    const oldest = this.kept[0]?.eventSeq ?? this.seq + 1;
    if (afterSeq + 1 < oldest && afterSeq < this.seq) return false;
    for (const event of this.kept) if (event.eventSeq > afterSeq) sink.send(event);
    return true;
  }

  detach(sink?: EventSink): void {
    if (sink === undefined || this.sink === sink) this.sink = undefined;
  }
}
