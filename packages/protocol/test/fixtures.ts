// One populated example of every ClientEvent and ServerEvent variant, shared by
// the wire tests so a new oneof case cannot be forgotten (see the exhaustiveness check).
import {
  CLIENT_EVENT_NAMES,
  ClientEvent,
  ContextSource,
  DeliveryMode,
  ErrorCode,
  FinishReason,
  Modality,
  OutputMode,
  SERVER_EVENT_NAMES,
  ServerEvent,
  TaskStatus,
  UnsupportedInput,
  type ClientEventName,
  type ServerEventName,
} from "../src/index.js";

const capabilities = {
  engine: "embedded",
  modelId: "tiny-qwen3moe",
  inputModalities: [Modality.MODALITY_TEXT],
  outputModalities: [Modality.MODALITY_TEXT],
  supportsRewind: true,
  maxContextTokens: 4096,
  protocolVersion: "1.0",
  randomWeights: true,
};

export const clientEvents: Record<ClientEventName, ClientEvent> = {
  start: ClientEvent.fromPartial({
    eventId: "e1",
    event: {
      $case: "start",
      value: {
        protocolVersion: "1.0",
        config: {
          inputModalities: [Modality.MODALITY_TEXT, Modality.MODALITY_AUDIO],
          outputMode: OutputMode.OUTPUT_MODE_TEXT,
          inputSampleRateHz: 48000,
          outputSampleRateHz: 24000,
          voice: "calm",
          instructions: "Be brief.",
          tools: [{ name: "get_time", description: "Current time", parametersJson: '{"type":"object"}', timeoutMs: 2000 }],
          defaultDelivery: DeliveryMode.DELIVERY_MODE_WHEN_IDLE,
          maxOutputTokensPerTurn: 8,
          chunkDurationMs: 200,
          unsupportedInput: UnsupportedInput.UNSUPPORTED_INPUT_NOTE,
          labels: { app: "test", team: "core" },
          record: true,
        },
      },
    },
  }),
  resume: ClientEvent.fromPartial({
    event: { $case: "resume", value: { protocolVersion: "1.0", resumeToken: "tok", lastEventSeq: 41 } },
  }),
  input: ClientEvent.fromPartial({
    event: {
      $case: "input",
      value: {
        seq: 7,
        startMs: 1400,
        durationMs: 200,
        text: "héllo",
        pcm: { sampleRateHz: 16000, channels: 1, pcm16: new Uint8Array([1, 0, 255, 127]) },
        dmel: { frames: 1, channels: 80, codes: new Uint8Array(80).fill(3) },
        frames: [{ widthPx: 2, heightPx: 1, rgb: new Uint8Array([1, 2, 3, 4, 5, 6]), offsetMs: 40 }],
        patches: [{ patchSizePx: 40, rows: 1, cols: 1, rgb: new Uint8Array(4800).fill(9), offsetMs: 0 }],
        userSpeaking: true,
      },
    },
  }),
  playback: ClientEvent.fromPartial({ event: { $case: "playback", value: { playedUpToMs: 5200 } } }),
  interrupt: ClientEvent.fromPartial({ event: { $case: "interrupt", value: { playedUpToMs: 5300 } } }),
  toolResult: ClientEvent.fromPartial({
    event: { $case: "toolResult", value: { callId: "call-1", outputJson: '{"time":"12:00"}', isError: false } },
  }),
  delegate: ClientEvent.fromPartial({
    event: {
      $case: "delegate",
      value: { taskId: "t1", task: "Find flights", delivery: DeliveryMode.DELIVERY_MODE_SILENT, timeoutMs: 30000 },
    },
  }),
  cancelTask: ClientEvent.fromPartial({ event: { $case: "cancelTask", value: { taskId: "t1" } } }),
  end: ClientEvent.fromPartial({ event: { $case: "end", value: { reason: "done" } } }),
};

export const serverEvents: Record<ServerEventName, ServerEvent> = {
  started: ServerEvent.fromPartial({
    eventSeq: 1,
    event: {
      $case: "started",
      value: {
        sessionId: "s1",
        resumeToken: "tok",
        protocolVersion: "1.0",
        capabilities,
        resumeGraceMs: 30000,
        resumed: true,
        nextInputSeq: 8,
        maxOutputTokensPerTurn: 12,
      },
    },
  }),
  output: ServerEvent.fromPartial({
    eventSeq: 2,
    event: {
      $case: "output",
      value: {
        seq: 7,
        startMs: 1400,
        durationMs: 200,
        text: "hi",
        audio: { sampleRateHz: 24000, channels: 1, pcm16: new Uint8Array([0, 1]) },
        silent: false,
        latencyMs: 12.5,
        finishReason: FinishReason.FINISH_REASON_LENGTH,
      },
    },
  }),
  inputAck: ServerEvent.fromPartial({ eventSeq: 3, event: { $case: "inputAck", value: { seq: 7, duplicate: true, queueDepth: 2 } } }),
  toolCall: ServerEvent.fromPartial({
    eventSeq: 4,
    event: { $case: "toolCall", value: { callId: "call-1", name: "get_time", argumentsJson: "{}", seq: 7, timeoutMs: 2000 } },
  }),
  background: ServerEvent.fromPartial({
    eventSeq: 5,
    event: {
      $case: "background",
      value: {
        taskId: "t1",
        status: TaskStatus.TASK_STATUS_DONE,
        content: "3 flights",
        delivery: DeliveryMode.DELIVERY_MODE_INTERRUPT,
        errorMessage: "",
        deliveredAtSeq: 9,
        fromModel: true,
        task: "Find flights",
      },
    },
  }),
  error: ServerEvent.fromPartial({
    eventSeq: 6,
    event: {
      $case: "error",
      value: { code: ErrorCode.ERROR_CODE_SEQ_GAP, message: "expected seq 8", retryable: true, seq: 8, eventId: "e9", fatal: false },
    },
  }),
  goAway: ServerEvent.fromPartial({ eventSeq: 7, event: { $case: "goAway", value: { reason: "drain", resumeToken: "tok", deadlineMs: 5000 } } }),
  metrics: ServerEvent.fromPartial({
    eventSeq: 8,
    event: {
      $case: "metrics",
      value: {
        chunks: 10,
        turnP50Ms: 20,
        turnP95Ms: 31.5,
        realTimeFactor: 0.1,
        queueLagMs: 0,
        positionTokens: 180,
        backgroundTasks: 1,
        appendP50Ms: 4.25,
        contextRollovers: 2,
      },
    },
  }),
  ended: ServerEvent.fromPartial({ eventSeq: 9, event: { $case: "ended", value: { reason: "client", chunks: 10, recordingPath: "/tmp/r.jsonl" } } }),
};

// Fails to compile (and at run time) when a oneof case has no fixture or the name lists drift.
export const allClientEvents: ClientEvent[] = CLIENT_EVENT_NAMES.map((name) => clientEvents[name]);
export const allServerEvents: ServerEvent[] = SERVER_EVENT_NAMES.map((name) => serverEvents[name]);
export const contextSample = { source: ContextSource.CONTEXT_SOURCE_BACKGROUND, text: "result", refId: "t1" };
