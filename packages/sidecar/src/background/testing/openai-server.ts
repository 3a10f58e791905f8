// A scripted OpenAI-compatible chat-completions server on 127.0.0.1 for tests:
// streams content and tool calls at a chosen pace, answers HTTP errors, hangs,
// drops connections, or sends garbage. Each request is recorded.
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";

export interface ScriptedToolCall {
  id?: string;
  name: string;
  /** Arguments JSON; streamed in pieces of `argumentPieceChars`. */
  arguments: string;
}

export type Scenario =
  /** A normal streamed completion. */
  | {
      kind: "stream";
      content?: string[];
      toolCalls?: ScriptedToolCall[];
      /** Delay before each event, ms. */
      delayMs?: number;
      /** Delay before the headers, ms. */
      headersDelayMs?: number;
      finishReason?: string;
      usage?: { prompt_tokens: number; completion_tokens: number };
      argumentPieceChars?: number;
    }
  /** An HTTP error status with an OpenAI-style error body. */
  | { kind: "status"; status: number; message?: string }
  /** Streams `content` pieces, then destroys the socket without [DONE]. */
  | { kind: "drop"; content?: string[]; delayMs?: number }
  /** Accepts the request and never answers. */
  | { kind: "hang" }
  /** Sends these SSE data payloads verbatim, then ends (or, with keepOpen, sends a comment every 50 ms and never ends). */
  | { kind: "raw"; events: string[]; keepOpen?: boolean };

export interface RecordedRequest {
  path: string;
  headers: IncomingHttpHeaders;
  body: { model?: string; messages?: Array<Record<string, unknown>>; tools?: unknown[]; stream?: boolean; [key: string]: unknown };
}

export interface OpenAiTestServer {
  url: string;
  requests: RecordedRequest[];
  /** Requests whose response is still open. */
  readonly inFlight: number;
  /** The highest number of requests open at once. */
  readonly maxInFlight: number;
  /** TCP connections accepted so far. */
  readonly connectionCount: number;
  /** Replaces the script for the requests that follow. */
  setScript(script: Scenario | ((request: RecordedRequest, index: number) => Scenario)): void;
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function chunkJson(delta: Record<string, unknown>, finishReason: string | null = null): string {
  return JSON.stringify({
    id: "chatcmpl-test",
    object: "chat.completion.chunk",
    created: Math.floor(Date.now() / 1000),
    model: "test-model",
    choices: [{ index: 0, delta, finish_reason: finishReason }],
  });
}

/**
 * The SSE data payloads of a "stream" scenario, each after its delay, ending in
 * [DONE]: what the HTTP server writes, and what an SGLang gRPC test server
 * passes through as ChatComplete chunks.
 */
export async function* streamEvents(scenario: Extract<Scenario, { kind: "stream" }>): AsyncGenerator<string> {
  const paced = async function* (data: string): AsyncGenerator<string> {
    if (scenario.delayMs !== undefined && scenario.delayMs > 0) await sleep(scenario.delayMs);
    yield data;
  };
  yield* paced(chunkJson({ role: "assistant", content: "" }));
  for (const piece of scenario.content ?? []) yield* paced(chunkJson({ content: piece }));
  const pieceChars = scenario.argumentPieceChars ?? 8;
  for (const [index, call] of (scenario.toolCalls ?? []).entries()) {
    yield* paced(chunkJson({ tool_calls: [{ index, id: call.id ?? `call_${index}`, type: "function", function: { name: call.name, arguments: "" } }] }));
    for (let i = 0; i < call.arguments.length; i += pieceChars) {
      yield* paced(chunkJson({ tool_calls: [{ index, function: { arguments: call.arguments.slice(i, i + pieceChars) } }] }));
    }
  }
  const finish = scenario.finishReason ?? ((scenario.toolCalls?.length ?? 0) > 0 ? "tool_calls" : "stop");
  yield* paced(chunkJson({}, finish));
  if (scenario.usage !== undefined) {
    yield* paced(JSON.stringify({ id: "chatcmpl-test", object: "chat.completion.chunk", choices: [], usage: scenario.usage }));
  }
  yield* paced("[DONE]");
}

async function streamScenario(res: ServerResponse, scenario: Extract<Scenario, { kind: "stream" }>, closed: () => boolean): Promise<void> {
  if (scenario.headersDelayMs !== undefined) await sleep(scenario.headersDelayMs);
  if (closed()) return;
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
  for await (const data of streamEvents(scenario)) {
    if (closed()) return;
    res.write(`data: ${data}\n\n`);
  }
  res.end();
}

/** Starts the server on an ephemeral loopback port. */
export async function startOpenAiTestServer(initial: Scenario | ((request: RecordedRequest, index: number) => Scenario) = { kind: "stream", content: ["ok"] }): Promise<OpenAiTestServer> {
  let script = initial;
  const requests: RecordedRequest[] = [];
  const sockets = new Set<Socket>();
  let inFlight = 0;
  let maxInFlight = 0;
  let connectionCount = 0;

  const server: Server = createServer((req, res) => {
    let raw = "";
    req.setEncoding("utf8");
    req.on("data", (part: string) => (raw += part));
    req.on("end", () => {
      let body: RecordedRequest["body"];
      try {
        body = JSON.parse(raw) as RecordedRequest["body"];
      } catch {
        res.writeHead(400, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: { message: "request body is not JSON" } }));
        return;
      }
      const recorded: RecordedRequest = { path: req.url ?? "", headers: req.headers, body };
      requests.push(recorded);
      const scenario = typeof script === "function" ? script(recorded, requests.length - 1) : script;
      let isClosed = false;
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      res.on("close", () => {
        isClosed = true;
        inFlight--;
      });
      void (async () => {
        switch (scenario.kind) {
          case "stream":
            await streamScenario(res, scenario, () => isClosed);
            return;
          case "status":
            res.writeHead(scenario.status, { "content-type": "application/json" });
            res.end(JSON.stringify({ error: { message: scenario.message ?? `scripted ${scenario.status}`, type: "server_error" } }));
            return;
          case "drop":
            res.writeHead(200, { "content-type": "text/event-stream" });
            for (const piece of scenario.content ?? []) {
              if (scenario.delayMs !== undefined) await sleep(scenario.delayMs);
              res.write(`data: ${chunkJson({ content: piece })}\n\n`);
            }
            await sleep(10);
            req.socket.destroy();
            return;
          case "hang":
            return;
          case "raw":
            res.writeHead(200, { "content-type": "text/event-stream" });
            for (const event of scenario.events) res.write(`data: ${event}\n\n`);
            if (!scenario.keepOpen) {
              res.end();
              return;
            }
            while (!res.destroyed) {
              res.write(": heartbeat\n\n");
              await sleep(50);
            }
            return;
        }
      })();
    });
  });
  server.on("connection", (socket) => {
    sockets.add(socket);
    connectionCount++;
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    get inFlight() {
      return inFlight;
    },
    get maxInFlight() {
      return maxInFlight;
    },
    get connectionCount() {
      return connectionCount;
    },
    setScript(next) {
      script = next;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
