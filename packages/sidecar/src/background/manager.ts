// Background tasks of one session: runs delegated tasks against the
// background model concurrently with the conversation, under a concurrency
// cap, with deadlines, cancellation, coalesced progress and server-side tool
// rounds. Failures become FAILED updates; nothing a task does throws into the
// session or waits on it.
import { EventEmitter } from "eventemitter3";
import { DeliveryMode, TaskStatus, type BackgroundUpdate } from "@microturn/protocol";
import type { ToolOutcome } from "../tools/errors.js";
import type { ServerToolRegistry } from "../tools/registry.js";
import type { BackgroundClient, ChatMessage, ChatToolCall } from "./client.js";
import { buildContextPackage, type ContextPackageOptions, type ConversationEntry } from "./context-package.js";
import { BackgroundError } from "./errors.js";
import type { MovedTaskState } from "../session/ports.js";
import { timerMs } from "../timers.js";

export interface BackgroundManagerOptions {
  client: BackgroundClient;
  /** Tasks running at once; more wait QUEUED. Default 2. */
  maxConcurrent?: number;
  /** Tasks waiting for a slot before start() refuses more. Default 32. */
  maxQueued?: number;
  /** Deadline of a task from acceptance, ms, when the request names none. Default 120000. */
  defaultTimeoutMs?: number;
  /** Delivery for requests that leave it UNSPECIFIED. Default WHEN_IDLE. */
  defaultDelivery?: DeliveryMode;
  /** At most one RUNNING update per this many ms... Default 100. */
  coalesceMs?: number;
  /** ...unless this many characters are waiting. Default 200. */
  coalesceChars?: number;
  /** Server-side tools the background model may call. */
  tools?: ServerToolRegistry;
  /** Chat rounds that may end in tool calls before the model must answer. Default 4. */
  maxToolRounds?: number;
  /** Model name passed to the client. */
  model?: string;
  context?: ContextPackageOptions;
}

export interface StartTaskRequest {
  /** Caller-chosen id; one is made when absent or empty. */
  taskId?: string;
  task: string;
  delivery?: DeliveryMode;
  /** 0 or absent takes the default. */
  timeoutMs?: number;
  /** True when the interaction model delegated, false for the app. */
  fromModel: boolean;
  /** The conversation so far; the context package is built from it at start(). */
  conversation: readonly ConversationEntry[];
}

export interface BackgroundToolEvent {
  taskId: string;
  name: string;
  argumentsJson: string;
  outcome: ToolOutcome;
}

export interface BackgroundManagerEvents {
  /** Every state change and coalesced progress, in the proto's shape (deliveredAtSeq is 0). */
  update: (update: BackgroundUpdate) => void;
  /** A server-side tool the background model called, after it ran. */
  toolCall: (event: BackgroundToolEvent) => void;
}

interface TaskState {
  id: string;
  task: string;
  delivery: DeliveryMode;
  fromModel: boolean;
  messages: ChatMessage[];
  controller: AbortController;
  content: string;
  pending: string;
  terminal: boolean;
  /** Why the task is being stopped from outside, when it is. */
  stopReason?: TaskStatus.TASK_STATUS_CANCELLED | TaskStatus.TASK_STATUS_TIMED_OUT;
  flushTimer?: NodeJS.Timeout;
  deadline: NodeJS.Timeout;
  timeoutMs: number;
  /** When it was accepted, Date.now() ms: its deadline is timeoutMs later. */
  acceptedAt: number;
}

const RECENT_LIMIT = 256;

export class BackgroundManager extends EventEmitter<BackgroundManagerEvents> {
  private readonly client: BackgroundClient;
  private readonly maxConcurrent: number;
  private readonly maxQueued: number;
  private readonly defaultTimeoutMs: number;
  private readonly defaultDelivery: DeliveryMode;
  private readonly coalesceMs: number;
  private readonly coalesceChars: number;
  private readonly tools: ServerToolRegistry | undefined;
  private readonly maxToolRounds: number;
  private readonly model: string | undefined;
  private readonly context: ContextPackageOptions;

  private readonly tasks = new Map<string, TaskState>();
  private generatedIds = 0;
  private readonly queue: TaskState[] = [];
  private running = 0;
  /** Ids that finished lately: cancelling one of them is a no-op, not NOT_FOUND. */
  private readonly recent = new Set<string>();

  constructor(options: BackgroundManagerOptions) {
    super();
    this.client = options.client;
    this.maxConcurrent = Math.max(1, options.maxConcurrent ?? 2);
    this.maxQueued = Math.max(0, options.maxQueued ?? 32);
    this.defaultTimeoutMs = options.defaultTimeoutMs ?? 120_000;
    this.defaultDelivery = options.defaultDelivery ?? DeliveryMode.DELIVERY_MODE_WHEN_IDLE;
    this.coalesceMs = options.coalesceMs ?? 100;
    this.coalesceChars = options.coalesceChars ?? 200;
    this.tools = options.tools;
    this.maxToolRounds = options.maxToolRounds ?? 4;
    this.model = options.model;
    this.context = options.context ?? {};
  }

  get runningCount(): number {
    return this.running;
  }

  get queuedCount(): number {
    return this.queue.length;
  }

  /**
   * An id for a task that came without one (the model's delegate calls):
   * numbered per session, so a replay on the same engine names the tasks as the
   * recording did and its recorded cancels find them; an id a client chose
   * (running, or among the recently finished) is skipped.
   */
  private nextId(): string {
    let id: string;
    do id = `task_${++this.generatedIds}`;
    while (this.tasks.has(id) || this.recent.has(id));
    return id;
  }

  /** Ids of tasks queued or running. */
  get taskIds(): string[] {
    return [...this.tasks.keys()];
  }

  /**
   * Accepts a task and returns its id at once; it runs when a slot is free.
   * Throws BackgroundError only for a bad request: invalid_argument (empty
   * task), already_exists (id in use), resource_exhausted (queue full).
   */
  start(request: StartTaskRequest): string {
    const task = request.task.trim();
    if (task === "") throw new BackgroundError("invalid_argument", "a background task needs a non-empty task text");
    const id = request.taskId !== undefined && request.taskId !== "" ? request.taskId : this.nextId();
    if (this.tasks.has(id)) throw new BackgroundError("already_exists", `background task "${id}" is already queued or running`, { taskId: id });
    const mustQueue = this.running >= this.maxConcurrent;
    if (mustQueue && this.queue.length >= this.maxQueued) {
      throw new BackgroundError("resource_exhausted", `${this.queue.length} background tasks are already waiting (limit ${this.maxQueued})`, { taskId: id });
    }
    const timeoutMs = request.timeoutMs !== undefined && request.timeoutMs > 0 ? request.timeoutMs : this.defaultTimeoutMs;
    const delivery = request.delivery === undefined || request.delivery === DeliveryMode.DELIVERY_MODE_UNSPECIFIED ? this.defaultDelivery : request.delivery;
    const contextOptions: ContextPackageOptions = { ...this.context };
    if (this.tools !== undefined && this.tools.names.length > 0) contextOptions.toolNames = this.tools.names;
    const state: TaskState = {
      id,
      task,
      delivery,
      fromModel: request.fromModel,
      messages: buildContextPackage(request.conversation, task, contextOptions),
      controller: new AbortController(),
      content: "",
      pending: "",
      terminal: false,
      timeoutMs,
      acceptedAt: Date.now(),
      deadline: setTimeout(() => this.stop(state, TaskStatus.TASK_STATUS_TIMED_OUT), timerMs(timeoutMs)),
    };
    this.tasks.set(id, state);
    this.recent.delete(id);
    if (mustQueue) {
      this.queue.push(state);
      // Deferred so the caller holds the id before any update about it arrives.
      queueMicrotask(() => {
        if (!state.terminal) this.emitUpdate(state, TaskStatus.TASK_STATUS_QUEUED);
      });
    } else {
      this.launch(state);
    }
    return id;
  }

  /**
   * Cancels a queued or running task: it ends CANCELLED at once and its model
   * call is aborted. Returns false for a task that already finished; throws
   * BackgroundError "not_found" for an id it never had.
   */
  cancel(taskId: string): boolean {
    const state = this.tasks.get(taskId);
    if (state === undefined) {
      if (this.recent.has(taskId)) return false;
      throw new BackgroundError("not_found", `no background task "${taskId}"`, { taskId });
    }
    this.stop(state, TaskStatus.TASK_STATUS_CANCELLED);
    return true;
  }

  cancelAll(): void {
    for (const state of [...this.tasks.values()]) this.stop(state, TaskStatus.TASK_STATUS_CANCELLED);
  }

  /** Task ids generated so far. */
  get idsMade(): number {
    return this.generatedIds;
  }

  /**
   * The session moves to another sidecar: every queued or running task stops
   * without an update (the taker runs it again and says so) and is returned
   * with the time left before its deadline. Listeners are dropped.
   */
  release(now = Date.now()): MovedTaskState[] {
    const moved = [...this.tasks.values()].map((state) => ({
      taskId: state.id,
      task: state.task,
      delivery: state.delivery,
      fromModel: state.fromModel,
      remainingMs: Math.max(1, state.acceptedAt + state.timeoutMs - now),
    }));
    this.removeAllListeners();
    this.cancelAll();
    return moved;
  }

  /**
   * Runs again, from the start, the tasks of a session that moved here; each
   * begins with a QUEUED update (its earlier progress is void). Generated ids
   * go on after `idsMade`.
   */
  adopt(idsMade: number, tasks: readonly MovedTaskState[], conversation: readonly ConversationEntry[]): void {
    this.generatedIds = Math.max(this.generatedIds, idsMade);
    const update = (moved: MovedTaskState, status: TaskStatus, errorMessage = ""): BackgroundUpdate => ({
      taskId: moved.taskId,
      status,
      content: "",
      delivery: moved.delivery,
      errorMessage,
      deliveredAtSeq: 0,
      fromModel: moved.fromModel,
      task: moved.task,
    });
    for (const moved of tasks) {
      // A task that must wait for a slot is announced QUEUED by start() itself.
      if (this.running < this.maxConcurrent) this.safeEmit("update", update(moved, TaskStatus.TASK_STATUS_QUEUED));
      try {
        this.start({ taskId: moved.taskId, task: moved.task, delivery: moved.delivery, timeoutMs: moved.remainingMs, fromModel: moved.fromModel, conversation });
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        this.safeEmit("update", update(moved, TaskStatus.TASK_STATUS_FAILED, `could not run again after the session moved: ${message}`));
      }
    }
  }

  /** Cancels everything and drops listeners (session end). */
  close(): void {
    this.cancelAll();
    this.removeAllListeners();
  }

  private launch(state: TaskState): void {
    // The slot is taken now so the next start() in this tick sees it; the work begins after the caller returns.
    this.running++;
    queueMicrotask(() => {
      const work = state.terminal ? Promise.resolve() : (this.emitUpdate(state, TaskStatus.TASK_STATUS_RUNNING), this.run(state));
      void work.finally(() => {
        this.running--;
        this.pump();
      });
    });
  }

  private pump(): void {
    while (this.running < this.maxConcurrent && this.queue.length > 0) {
      this.launch(this.queue.shift() as TaskState);
    }
  }

  private stop(state: TaskState, status: TaskStatus.TASK_STATUS_CANCELLED | TaskStatus.TASK_STATUS_TIMED_OUT): void {
    if (state.terminal) return;
    state.stopReason = status;
    const queued = this.queue.indexOf(state);
    if (queued !== -1) this.queue.splice(queued, 1);
    const message = status === TaskStatus.TASK_STATUS_TIMED_OUT ? `gave up after ${state.timeoutMs} ms` : "";
    this.finish(state, status, message);
    state.controller.abort(new BackgroundError("aborted", status === TaskStatus.TASK_STATUS_TIMED_OUT ? "task timed out" : "task cancelled", { taskId: state.id }));
  }

  private async run(state: TaskState): Promise<void> {
    const signal = state.controller.signal;
    let messages = state.messages;
    try {
      for (let round = 0; ; round++) {
        const offerTools = this.tools !== undefined && this.tools.names.length > 0 && round < this.maxToolRounds;
        const calls: ChatToolCall[] = [];
        let roundText = "";
        const stream = this.client.streamChat(messages, {
          signal,
          ...(offerTools ? { tools: (this.tools as ServerToolRegistry).chatToolSpecs() } : {}),
          ...(this.model === undefined ? {} : { model: this.model }),
        });
        for await (const delta of stream) {
          if (state.terminal) return;
          if (delta.type === "content") {
            roundText += delta.text;
            this.progress(state, delta.text);
          } else if (delta.type === "tool_call") {
            calls.push({ id: delta.id, type: "function", function: { name: delta.name, arguments: delta.argumentsJson } });
          }
        }
        if (calls.length === 0 || !offerTools) break;
        messages = [...messages, { role: "assistant", content: roundText === "" ? null : roundText, tool_calls: calls }];
        for (const call of calls) {
          const outcome = await (this.tools as ServerToolRegistry).execute(call.function.name, call.function.arguments, { signal });
          if (state.terminal) return;
          this.safeEmit("toolCall", { taskId: state.id, name: call.function.name, argumentsJson: call.function.arguments, outcome });
          messages.push({ role: "tool", tool_call_id: call.id, content: outcome.outputJson });
        }
      }
      this.finish(state, TaskStatus.TASK_STATUS_DONE, "");
    } catch (err) {
      if (state.terminal) return;
      const message = err instanceof Error ? err.message : String(err);
      this.finish(state, TaskStatus.TASK_STATUS_FAILED, message);
    }
  }

  private progress(state: TaskState, text: string): void {
    state.content += text;
    state.pending += text;
    if (state.pending.length >= this.coalesceChars) {
      this.flush(state);
    } else if (state.flushTimer === undefined) {
      state.flushTimer = setTimeout(() => this.flush(state), this.coalesceMs);
    }
  }

  private flush(state: TaskState): void {
    clearTimeout(state.flushTimer);
    state.flushTimer = undefined;
    if (state.pending === "" || state.terminal) return;
    const content = state.pending;
    state.pending = "";
    this.emitUpdate(state, TaskStatus.TASK_STATUS_RUNNING, content);
  }

  private finish(state: TaskState, status: TaskStatus, errorMessage: string): void {
    if (state.terminal) return;
    // Progress updates add up to the whole result: the last partial goes out before DONE.
    if (status === TaskStatus.TASK_STATUS_DONE) this.flush(state);
    state.terminal = true;
    clearTimeout(state.flushTimer);
    clearTimeout(state.deadline);
    this.tasks.delete(state.id);
    this.recent.add(state.id);
    if (this.recent.size > RECENT_LIMIT) this.recent.delete(this.recent.values().next().value as string);
    this.emitUpdate(state, status, status === TaskStatus.TASK_STATUS_DONE ? state.content : "", errorMessage);
  }

  private emitUpdate(state: TaskState, status: TaskStatus, content = "", errorMessage = ""): void {
    this.safeEmit("update", {
      taskId: state.id,
      status,
      content,
      delivery: state.delivery,
      errorMessage,
      deliveredAtSeq: 0,
      fromModel: state.fromModel,
      task: state.task,
    });
  }

  /**
   * A listener that throws must not break task bookkeeping. As with any
   * emitter, the listeners after it miss that one event.
   */
  private safeEmit<E extends keyof BackgroundManagerEvents>(event: E, payload: Parameters<BackgroundManagerEvents[E]>[0]): void {
    try {
      (this.emit as (e: E, p: typeof payload) => boolean)(event, payload);
    } catch (err) {
      process.emitWarning(`background ${event} listener threw: ${err instanceof Error ? err.message : String(err)}`, "MicroturnWarning");
    }
  }
}
