// A StreamingSession server over any Engine, for the adapter's tests: real
// grpc-js on 127.0.0.1, real sockets. A chunk whose text is `!status:N` fails
// with gRPC status N, so every status mapping is exercised over the wire. An
// Append cut short keeps what the engine kept (as the CPU reference servicer
// does), or with `rollBackUnfinished` is dropped whole (as the servicer inside
// SGLang does).
import { Metadata, Server, ServerCredentials, status, type ServiceError } from "@grpc/grpc-js";
import { PROTOCOL_VERSION, StreamingSessionService, type StreamingSessionServer } from "@microturn/protocol";
import type { Engine, EngineSession } from "../engine.js";
import { EngineError, type EngineErrorCode } from "../errors.js";
import { ERROR_CODE_TRAILER } from "./errors.js";

const STATUS_FOR: Record<EngineErrorCode, status> = {
  unknown_session: status.NOT_FOUND,
  session_closed: status.NOT_FOUND,
  rewind_out_of_range: status.OUT_OF_RANGE,
  busy: status.FAILED_PRECONDITION,
  too_large: status.RESOURCE_EXHAUSTED,
  invalid_model: status.FAILED_PRECONDITION,
  unsupported_modality: status.INVALID_ARGUMENT,
  unavailable: status.UNAVAILABLE,
  aborted: status.CANCELLED,
  invalid_argument: status.INVALID_ARGUMENT,
  internal: status.INTERNAL,
};

function toServiceError(error: unknown): Partial<ServiceError> {
  if (!EngineError.isInstance(error)) return { code: status.INTERNAL, details: String(error) };
  const metadata = new Metadata();
  metadata.set(ERROR_CODE_TRAILER, error.code);
  return { code: STATUS_FOR[error.code], details: error.message, metadata };
}

export interface TestServerOptions {
  /** An Append that ends without `done` delivered (cancelled, failed) leaves the session where it was before it. */
  rollBackUnfinished?: boolean;
}

export interface TestServer {
  address: string;
  sessions: Map<string, EngineSession>;
  stop(): Promise<void>;
}

export async function startTestServer(engine: Engine, options: TestServerOptions = {}): Promise<TestServer> {
  const sessions = new Map<string, EngineSession>();
  const find = (id: string): EngineSession => {
    const s = sessions.get(id);
    if (!s) throw new EngineError("unknown_session", `no session ${id}`);
    return s;
  };
  const capabilities = () => ({ ...engine.capabilities, protocolVersion: PROTOCOL_VERSION, inputModalities: [...engine.capabilities.inputModalities], outputModalities: [...engine.capabilities.outputModalities] });
  const impl: StreamingSessionServer = {
    openSession: (call, cb) => {
      engine
        .openSession({ sessionId: call.request.sessionId, capacityTokens: call.request.capacityTokens || undefined, systemPrompt: call.request.systemPrompt })
        .then((s) => {
          sessions.set(s.id, s);
          cb(null, { sessionId: s.id, capabilities: capabilities(), positionTokens: s.positionTokens, capacityTokens: s.stats().capacityTokens });
        })
        .catch((e) => cb(toServiceError(e)));
    },
    append: (call) => {
      const r = call.request;
      const forced = /^!status:(\d+)$/.exec(r.text);
      if (forced) {
        call.emit("error", { code: Number(forced[1]), details: `forced status ${forced[1]}` });
        return;
      }
      const controller = new AbortController();
      call.on("cancelled", () => controller.abort());
      void (async () => {
        let s: EngineSession | undefined;
        let before = 0;
        // The turn took the session (a refused one, busy say, must not touch it), and the client got its `done`
        // (the engine ends a cancelled turn with `done` too, but the client never gets it).
        let took = false;
        let finished = false;
        try {
          s = find(r.sessionId);
          before = s.positionTokens;
          const chunk = { seq: r.seq, startMs: r.startMs, durationMs: r.durationMs, text: r.text, context: r.context, video: r.video, ...(r.audio ? { audio: r.audio } : {}) };
          for await (const out of s.append(chunk, { maxOutputTokens: r.maxOutputTokens, stop: r.stop, temperature: r.temperature, signal: controller.signal })) {
            took = true;
            if (out.type === "delta") call.write({ event: { $case: "delta", value: { text: out.text, positionTokens: out.positionTokens } } });
            else call.write({ event: { $case: "done", value: { ...out.done, capacityTokens: s.stats().capacityTokens } } });
          }
          call.end();
          finished = !controller.signal.aborted;
        } catch (e) {
          call.emit("error", toServiceError(e));
        } finally {
          if (options.rollBackUnfinished && s && took && !finished) await s.rewind(before);
        }
      })();
    },
    rewind: (call, cb) => {
      Promise.resolve()
        .then(async () => {
          const s = find(call.request.sessionId);
          const before = s.positionTokens;
          const after = await s.rewind(call.request.positionTokens);
          cb(null, { positionTokens: after, droppedTokens: before - after });
        })
        .catch((e) => cb(toServiceError(e)));
    },
    closeSession: (call, cb) => {
      Promise.resolve()
        .then(async () => {
          const s = find(call.request.sessionId);
          const positionTokens = s.positionTokens;
          sessions.delete(s.id);
          await s.close();
          cb(null, { positionTokens });
        })
        .catch((e) => cb(toServiceError(e)));
    },
    health: (_call, cb) => {
      cb(null, { serving: true, activeSessions: sessions.size, capabilities: capabilities() });
    },
  };
  const server = new Server();
  server.addService(StreamingSessionService, impl);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (error, p) => (error ? reject(error) : resolve(p))),
  );
  return {
    address: `127.0.0.1:${port}`,
    sessions,
    stop: () => new Promise((resolve) => server.tryShutdown(() => resolve())),
  };
}
