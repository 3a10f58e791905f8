// The sglang-http engine against SGLang servers that misbehave or differ from
// the fake: a stream that pings forever (it once held the session with no end),
// a finished result whose [DONE] never comes (the turn once hung, then failed
// with its output lost), and a long system prompt (after the first context
// rollover every micro-turn once rolled over again, re-sending the prompt).
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { SessionConfig, InputChunk } from "@microturn/protocol";
import { afterEach, describe, expect, it } from "vitest";
import { createLogger } from "../../logger.js";
import { SessionHub } from "../../session/session-hub.js";
import type { Engine } from "../engine.js";
import { EngineError } from "../errors.js";
import { createSglangHttpEngine } from "./index.js";

type GenerateHandler = (body: { text: string; sampling_params: { max_new_tokens: number }; session_params: { id: string } }, res: import("node:http").ServerResponse) => void;

let server: Server | undefined;
let engine: Engine | undefined;

afterEach(async () => {
  await engine?.dispose();
  engine = undefined;
  server?.closeAllConnections();
  server?.close();
  server = undefined;
});

/** A minimal SGLang: model and server info, sessions, and /generate answered by `generate`. */
async function startSglang(generate: GenerateHandler, counters = { opens: 0 }): Promise<string> {
  server = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString()));
    req.on("end", () => {
      const parsed = body ? JSON.parse(body) : {};
      if (req.url === "/model_info") return void res.end(JSON.stringify({ model_path: "m" }));
      if (req.url === "/server_info") return void res.end(JSON.stringify({ context_length: 4096, enable_streaming_session: true }));
      if (req.url === "/open_session") {
        counters.opens++;
        return void res.end(JSON.stringify(parsed.session_id));
      }
      if (req.url === "/close_session") return void res.end("");
      if (req.url === "/generate") return generate(parsed, res);
      res.statusCode = 404;
      res.end();
    });
  });
  await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const sse = (res: import("node:http").ServerResponse, event: unknown) => res.write(`data: ${JSON.stringify(event)}\n\n`);
const chunk = (seq: number, text: string) => ({ seq, startMs: seq * 200, durationMs: 200, text });

describe("sglang-http against a misbehaving server", () => {
  it("ends a micro-turn that never finishes (the server only pings) at the turn deadline, as unavailable", async () => {
    const url = await startSglang((_body, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      const ping = setInterval(() => res.write(": ping\n\n"), 50);
      res.on("close", () => clearInterval(ping));
    });
    engine = await createSglangHttpEngine({ url, timeoutMs: 400 });
    const session = await engine.openSession({});
    const started = Date.now();
    const failure = await (async () => {
      for await (const _ of session.append(chunk(0, "hello"), { maxOutputTokens: 4 })) void _;
    })().catch((e: unknown) => e);
    expect(EngineError.isInstance(failure) && failure.code).toBe("unavailable");
    expect((failure as Error).message).toMatch(/micro-turn 0 did not finish within 400 ms/);
    expect(Date.now() - started).toBeLessThan(2000);
    // The session takes the next turn.
    expect(session.positionTokens).toBe(0);
  });

  it("takes a finished result whose [DONE] never comes, and goes on", async () => {
    let turns = 0;
    const url = await startSglang((_body, res) => {
      turns++;
      res.writeHead(200, { "content-type": "text/event-stream" });
      sse(res, { text: "hi", meta_info: { id: `r${turns}`, prompt_tokens: 5 * turns, completion_tokens: 1, finish_reason: { type: "stop" } } });
      // No [DONE], and the stream stays open.
    });
    engine = await createSglangHttpEngine({ url, timeoutMs: 10_000 });
    const session = await engine.openSession({});
    for (const seq of [0, 1]) {
      const started = Date.now();
      const seen: string[] = [];
      for await (const out of session.append(chunk(seq, "hello"), { maxOutputTokens: 4 })) seen.push(out.type === "delta" ? `delta ${out.text}` : `done ${out.done.positionTokens}`);
      expect(seen).toEqual(["delta hi", `done ${5 * (seq + 1) + 1}`]);
      expect(Date.now() - started).toBeLessThan(3000);
    }
  });
});

describe("sglang-http and the context window", () => {
  it("a long system prompt rolls the context over once, not on every later micro-turn", async () => {
    const counters = { opens: 0 };
    const totals = new Map<string, number>();
    const url = await startSglang((body, res) => {
      const id = body.session_params.id;
      // About four characters a token.
      const prompt = (totals.get(id) ?? 0) + Math.ceil(body.text.length / 4);
      const out = body.sampling_params.max_new_tokens > 0 ? 1 : 0;
      totals.set(id, prompt + out);
      res.writeHead(200, { "content-type": "text/event-stream" });
      sse(res, { text: out ? "x" : "", output_ids: out ? [7] : [], meta_info: { id, prompt_tokens: prompt, completion_tokens: out, finish_reason: { type: "length" } } });
      res.end("data: [DONE]\n\n");
    }, counters);
    engine = await createSglangHttpEngine({ url });
    const hub = new SessionHub({
      engine,
      limits: { maxOutputTokensPerTurn: 6, maxQueuedChunks: 8, sessionTokens: 4096 },
      maxSessions: 4,
      resumeGraceMs: 1000,
      recordDir: "",
      logger: createLogger("silent"),
    });
    // ~510 tokens of instructions: an eighth of the sequence.
    const handle = await hub.create(SessionConfig.fromPartial({ instructions: "You are helpful. ".repeat(120) }), { send: () => undefined });
    const opensBefore = counters.opens;
    for (let seq = 0; seq < 400; seq++) {
      handle.session.acceptInput(InputChunk.fromPartial({ seq, startMs: seq * 200, durationMs: 200, text: `user says number ${seq} okay` }));
      await handle.session.whenIdle();
    }
    // 400 turns of ~16 tokens fill 4,096 tokens about twice over: a rollover or two, not one per turn.
    const rollovers = counters.opens - opensBefore;
    expect(rollovers).toBeGreaterThanOrEqual(1);
    expect(rollovers).toBeLessThanOrEqual(3);
    await hub.closeAll("done");
  }, 60_000);
});
