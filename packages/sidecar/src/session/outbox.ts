// Numbers every server event of a session and keeps the recent ones, so a
// client that lost its stream can resume and receive exactly what it missed.
import type { ServerEvent } from "@microturn/protocol";
import type { ServerPayload } from "./ports.js";

export interface EventSink {
  send(event: ServerEvent): void;
}

export interface OutboxOptions {
  /** Most events kept (up to capacity + a trim batch). Default 4,096. */
  capacity?: number;
  /**
   * While a stream is attached, events older than this are dropped too: a
   * client that resumes lost at most what was in flight when its stream broke.
   * Events sent while no stream is attached are kept (up to the capacity).
   * Default: no age limit.
   */
  keepMs?: number;
  /**
   * While a stream is attached, output audio older than this is dropped from the
   * kept events (their text stays): audio is most of a speaking session's bytes
   * (96 KB/s at 48 kHz), and a resume that far back could not play it in time
   * anyway. Default 10 s.
   */
  audioKeepMs?: number;
  now?: () => number;
}

/** Events dropped at once: shifting a long array on every event would copy it each time. */
const TRIM_BATCH = 256;
/** Events past their age dropped at once. */
const AGE_TRIM_BATCH = 32;

export class Outbox {
  private readonly kept: ServerEvent[] = [];
  /** When each kept event was pushed, ms (same order as `kept`). */
  private readonly keptAt: number[] = [];
  private readonly capacity: number;
  private readonly keepMs: number;
  private readonly audioKeepMs: number;
  private readonly now: () => number;
  private seq = 0;
  private sink: EventSink | undefined;
  /** Kept events before this index carry no audio any more. */
  private audioFrom = 0;

  constructor(options: OutboxOptions = {}) {
    this.capacity = options.capacity ?? 4096;
    this.keepMs = options.keepMs ?? Infinity;
    this.audioKeepMs = options.audioKeepMs ?? 10_000;
    this.now = options.now ?? (() => performance.now());
  }

  get lastEventSeq(): number {
    return this.seq;
  }

  get attached(): boolean {
    return this.sink !== undefined;
  }

  /** Events kept for resume. */
  get size(): number {
    return this.kept.length;
  }

  push(payload: ServerPayload): ServerEvent {
    const event: ServerEvent = { eventSeq: ++this.seq, event: payload };
    const now = this.now();
    this.kept.push(event);
    this.keptAt.push(now);
    if (this.kept.length >= this.capacity + TRIM_BATCH) this.drop(this.kept.length - this.capacity);
    else if (this.sink && this.keptAt[AGE_TRIM_BATCH - 1]! < now - this.keepMs) this.drop(this.countOlderThan(now - this.keepMs));
    if (this.sink) this.dropOldAudio(now - this.audioKeepMs);
    this.sink?.send(event);
    return event;
  }

  private dropOldAudio(before: number): void {
    for (; this.audioFrom < this.kept.length && this.keptAt[this.audioFrom]! < before; this.audioFrom++) {
      const kept = this.kept[this.audioFrom]!;
      const body = kept.event;
      // A copy, not an edit: the event sent may still wait in the transport's queue with its audio.
      if (body?.$case === "output" && body.value.audio) this.kept[this.audioFrom] = { ...kept, event: { $case: "output", value: { ...body.value, audio: undefined } } };
    }
  }

  /** The kept events after `afterSeq`, in order. */
  eventsAfter(afterSeq: number): ServerEvent[] {
    return this.kept.filter((event) => event.eventSeq > afterSeq);
  }

  /**
   * Starts the outbox of a session that moved here: the events its client has
   * not seen, numbered as the other sidecar numbered them, and numbering goes on
   * after `lastSeq`.
   */
  restore(events: readonly ServerEvent[], lastSeq: number): void {
    const now = this.now();
    for (const event of events) {
      this.kept.push(event);
      this.keptAt.push(now);
    }
    this.seq = Math.max(this.seq, lastSeq);
  }

  /** Whether every event after `afterSeq` is still kept, so a stream resuming from there misses nothing. */
  canReplayAfter(afterSeq: number): boolean {
    const oldest = this.kept[0]?.eventSeq ?? this.seq + 1;
    return afterSeq + 1 >= oldest || afterSeq >= this.seq;
  }

  /**
   * Attaches a stream and sends it every kept event after `afterSeq`. False,
   * with nothing attached or sent, when some of them were already dropped.
   */
  attach(sink: EventSink, afterSeq?: number): boolean {
    if (afterSeq === undefined) {
      this.sink = sink;
      return true;
    }
    if (!this.canReplayAfter(afterSeq)) return false;
    this.sink = sink;
    for (const event of this.kept) if (event.eventSeq > afterSeq) sink.send(event);
    return true;
  }

  /** Detaches `sink` (any stream when undefined); false when `sink` was not the attached one. */
  detach(sink?: EventSink): boolean {
    if (sink !== undefined && this.sink !== sink) return false;
    this.sink = undefined;
    return true;
  }

  private countOlderThan(ms: number): number {
    let n = 0;
    while (n < this.keptAt.length && this.keptAt[n]! < ms) n++;
    return n;
  }

  private drop(n: number): void {
    this.kept.splice(0, n);
    this.keptAt.splice(0, n);
    this.audioFrom = Math.max(0, this.audioFrom - n);
  }
}
