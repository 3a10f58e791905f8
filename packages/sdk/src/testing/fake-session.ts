// One session inside the fake sidecar: its server-event history (for resume
// replay), the input seqs it took, and the scripted model behind it.
import {
  type ClientEvent,
  type Delegate,
  ErrorCode,
  type InputChunk,
  type OutputChunk,
  type ServerEvent,
  type SessionConfig,
  TaskStatus,
  type ToolResult,
} from "@microturn/protocol";
import type { FakePeer } from "./fake-sidecar.js";

export interface FakeTaskStep {
  status: TaskStatus;
  content?: string;
  errorMessage?: string;
}

export interface FakeSessionScript {
  /** Output for each accepted chunk; default echoes its text as "echo: <text>" and is silent otherwise. */
  reply?: (chunk: InputChunk, session: FakeSession) => Partial<OutputChunk> | undefined;
  /** Steps of a delegated task; default RUNNING "working on <task>" then DONE "result of <task>". */
  background?: (task: Delegate, session: FakeSession) => FakeTaskStep[];
  /** Return true to lose a chunk in transit (as if never received), to exercise gap repair. */
  loseInput?: (chunk: InputChunk, session: FakeSession) => boolean;
  /** Delay between background steps, in ms; default 5. */
  backgroundStepMs?: number;
}

export class FakeSession {
  peer: FakePeer | undefined;
  /** Every sequenced event sent, in order (replayed after a resume). */
  readonly history: ServerEvent[] = [];
  /** Seqs taken, in order: each exactly once when the client behaves. */
  readonly accepted: number[] = [];
  /** Chunks taken, in order. */
  readonly chunks: InputChunk[] = [];
  /** Seqs that arrived again and were acked as duplicates. */
  readonly duplicates: number[] = [];
  /** Every client event after the first. */
  readonly received: ClientEvent[] = [];
  readonly toolResults: ToolResult[] = [];
  readonly delegates: Delegate[] = [];
  readonly cancelled: string[] = [];
  readonly playback: number[] = [];
  readonly interrupts: number[] = [];
  expectedSeq = 0;
  resumes = 0;
  ended = false;
  private eventSeq = 0;
  private outputMs = 0;
  private nextCallId = 1;
  private readonly pendingCalls = new Map<string, (result: ToolResult) => void>();
  private readonly timers = new Set<ReturnType<typeof setTimeout>>();
  private readonly tasks = new Map<string, boolean>();

  constructor(
    readonly id: string,
    public resumeToken: string,
    readonly config: SessionConfig,
    private readonly script: FakeSessionScript,
  ) {}

  attach(peer: FakePeer): void {
    this.peer = peer;
  }

  /** Forgets the current stream, first letting `close` end it (the session stays resumable). */
  detach(close?: (peer: FakePeer) => void): void {
    const peer = this.peer;
    this.peer = undefined;
    if (peer && close) close(peer);
  }

  /** Sends a sequenced event (kept in the history even while no stream is attached). */
  send(event: NonNullable<ServerEvent["event"]>): ServerEvent {
    const sequenced: ServerEvent = { eventSeq: ++this.eventSeq, event };
    this.history.push(sequenced);
    this.peer?.send(sequenced);
    return sequenced;
  }

  sendError(code: ErrorCode, message: string, options: { fatal?: boolean; seq?: number; retryable?: boolean } = {}): void {
    this.send({
      $case: "error",
      value: { code, message, retryable: options.retryable ?? false, seq: options.seq ?? 0, eventId: "", fatal: options.fatal ?? false },
    });
  }

  /** Asks the client to run a tool; resolves with its ToolResult. */
  callTool(name: string, args: unknown, timeoutMs = 5000): Promise<ToolResult> {
    const callId = `call-${this.nextCallId++}`;
    const result = new Promise<ToolResult>((resolve) => this.pendingCalls.set(callId, resolve));
    this.send({ $case: "toolCall", value: { callId, name, argumentsJson: JSON.stringify(args), seq: Math.max(0, this.expectedSeq - 1), timeoutMs } });
    return result;
  }

  onClientEvent(body: NonNullable<ClientEvent["event"]>): void {
    switch (body.$case) {
      case "input":
        return this.onInput(body.value);
      case "playback":
        this.playback.push(body.value.playedUpToMs);
        return;
      case "interrupt":
        this.interrupts.push(body.value.playedUpToMs);
        return;
      case "toolResult": {
        this.toolResults.push(body.value);
        const resolve = this.pendingCalls.get(body.value.callId);
        this.pendingCalls.delete(body.value.callId);
        if (resolve) resolve(body.value);
        else this.sendError(ErrorCode.ERROR_CODE_NOT_FOUND, `no tool call ${body.value.callId}`);
        return;
      }
      case "delegate":
        return this.onDelegate(body.value);
      case "cancelTask":
        this.cancelled.push(body.value.taskId);
        if (this.tasks.get(body.value.taskId)) {
          this.tasks.set(body.value.taskId, false);
          this.send({ $case: "background", value: this.update(body.value.taskId, { status: TaskStatus.TASK_STATUS_CANCELLED }) });
        } else {
          this.sendError(ErrorCode.ERROR_CODE_NOT_FOUND, `no running task ${body.value.taskId}`);
        }
        return;
      case "end":
        this.ended = true;
        this.send({ $case: "ended", value: { reason: body.value.reason, chunks: this.accepted.length, recordingPath: "" } });
        this.stop();
        this.detach((peer) => peer.end());
        return;
      default:
        this.sendError(ErrorCode.ERROR_CODE_FAILED_PRECONDITION, `${body.$case} is only valid as the first event`);
    }
  }

  stop(): void {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }

  private onInput(chunk: InputChunk): void {
    if (this.script.loseInput?.(chunk, this)) return;
    if (chunk.seq < this.expectedSeq) {
      this.duplicates.push(chunk.seq);
      this.send({ $case: "inputAck", value: { seq: chunk.seq, duplicate: true, queueDepth: 0 } });
      return;
    }
    if (chunk.seq > this.expectedSeq) {
      this.sendError(ErrorCode.ERROR_CODE_SEQ_GAP, `expected seq ${this.expectedSeq}, got ${chunk.seq}`, { seq: this.expectedSeq, retryable: true });
      return;
    }
    this.expectedSeq++;
    this.accepted.push(chunk.seq);
    this.chunks.push(chunk);
    this.send({ $case: "inputAck", value: { seq: chunk.seq, duplicate: false, queueDepth: 0 } });
    const reply = this.script.reply ? this.script.reply(chunk, this) : chunk.text ? { text: `echo: ${chunk.text}` } : undefined;
    const text = reply?.text ?? "";
    const durationMs = reply?.durationMs ?? (text || reply?.audio ? chunk.durationMs : 0);
    const output: OutputChunk = {
      seq: chunk.seq,
      startMs: this.outputMs,
      durationMs,
      text,
      audio: reply?.audio,
      silent: reply === undefined || (text === "" && !reply.audio),
      latencyMs: reply?.latencyMs ?? 1,
      finishReason: reply?.finishReason ?? 0,
    };
    this.outputMs += durationMs;
    this.send({ $case: "output", value: output });
  }

  private onDelegate(task: Delegate): void {
    this.delegates.push(task);
    this.tasks.set(task.taskId, true);
    const steps = this.script.background?.(task, this) ?? [
      { status: TaskStatus.TASK_STATUS_RUNNING, content: `working on ${task.task}` },
      { status: TaskStatus.TASK_STATUS_DONE, content: `result of ${task.task}` },
    ];
    const stepMs = this.script.backgroundStepMs ?? 5;
    steps.forEach((step, index) => {
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        if (!this.tasks.get(task.taskId)) return;
        if (step.status >= TaskStatus.TASK_STATUS_DONE) this.tasks.set(task.taskId, false);
        this.send({ $case: "background", value: this.update(task.taskId, step, task) });
      }, stepMs * (index + 1));
      this.timers.add(timer);
    });
  }

  private update(taskId: string, step: FakeTaskStep, task?: Delegate) {
    return {
      taskId,
      status: step.status,
      content: step.content ?? "",
      delivery: task?.delivery ?? 0,
      errorMessage: step.errorMessage ?? "",
      deliveredAtSeq: 0,
      fromModel: false,
      task: task?.task ?? "",
    };
  }
}
