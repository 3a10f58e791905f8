// The `microturn` command as a user runs it: `replay` with the environment of
// a production sidecar, and what a bad or missing recording prints.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ClientEvent, PROTOCOL_VERSION } from "@microturn/protocol";
import { afterEach, describe, expect, it } from "vitest";
import { spawnTsx } from "./helpers/spawn-tsx.js";

const CLI = fileURLToPath(new URL("../src/cli.ts", import.meta.url));
const HEADER = '{"format":"microturn-recording/1","sessionId":"s","startedAt":"2024-01-01T00:00:00.000Z"}';

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

function recording(name: string, text: string): string {
  dir ??= mkdtempSync(join(tmpdir(), "microturn-cli-"));
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const line = (event: ClientEvent) => JSON.stringify({ tMs: 0, event: ClientEvent.toJSON(event) });
const input = (seq: number, text: string) => ClientEvent.fromPartial({ event: { $case: "input", value: { seq, startMs: seq * 200, durationMs: 200, text } } });
const session = (protocolVersion = PROTOCOL_VERSION) =>
  [
    HEADER,
    line(ClientEvent.fromPartial({ event: { $case: "start", value: { protocolVersion, config: { chunkDurationMs: 200 } } } })),
    line(input(0, "hello there")),
    line(input(1, "")),
    line(ClientEvent.fromPartial({ event: { $case: "end", value: { reason: "done" } } })),
  ].join("\n") + "\n";

async function microturn(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const run = spawnTsx(CLI, args, env);
  const code = await run.exited;
  return { code, stdout: run.stdout, stderr: run.stderr };
}

const ECHO = ["--engine", "echo", "--background", "none", "--log-level", "error"];

describe("microturn replay", () => {
  it("replays with MICROTURN_API_KEY set (the replay's own client was refused and waited 60 s a chunk)", async () => {
    const started = Date.now();
    const { code, stdout, stderr } = await microturn(["replay", recording("ok.jsonl", session()), ...ECHO], { MICROTURN_API_KEY: "secret" });
    expect(stderr).toBe("");
    expect(code).toBe(0);
    expect(stdout).toMatch(/^seq +0 +"hello there"$/m);
    expect(Date.now() - started).toBeLessThan(20_000);
  }, 25_000);

  it("gives the model the recorded context unless --context live says otherwise", async () => {
    const recorded = (seq: number) => JSON.stringify({ tMs: 0, context: { seq, items: [{ source: "CONTEXT_SOURCE_TOOL", text: "[tool calc result] 42", refId: "calc" }] } });
    const lines = session().trim().split("\n");
    const v2 = [lines[0]!.replace("microturn-recording/1", "microturn-recording/2"), lines[1], lines[2], recorded(1), ...lines.slice(3)].join("\n");
    const file = recording("v2.jsonl", v2);
    const asRecorded = await microturn(["replay", file, ...ECHO]);
    expect(asRecorded.stderr).toBe("");
    expect(asRecorded.code).toBe(0);
    expect(asRecorded.stdout).toMatch(/^context as recorded: 1 background and tool result at 1 micro-turn /m);
    const live = await microturn(["replay", file, "--context", "live", ...ECHO]);
    expect(live.code).toBe(0);
    expect(live.stdout).toMatch(/^context live: background and tool results join as the replay's tools and background model answer$/m);
    const old = await microturn(["replay", recording("v1.jsonl", session()), ...ECHO]);
    expect(old.stdout).toMatch(/^context live: .*v1\.jsonl was written by an older sidecar \(microturn-recording\/1\) and kept none/m);
    const bad = await microturn(["replay", file, "--context=later", ...ECHO]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe('microturn: --context must be recorded or live, got "later"\n');
  }, 40_000);

  it("exits 1 and says why when the stream ends before the recording does", async () => {
    const { code, stderr } = await microturn(["replay", recording("old.jsonl", session("9.0")), ...ECHO]);
    expect(code).toBe(1);
    expect(stderr).toMatch(/FAILED_PRECONDITION/);
    expect(stderr).toMatch(/3 recorded events were not sent/);
  }, 25_000);

  it("prints one line, no stack, for a bad or missing recording", async () => {
    for (const [file, message] of [
      [recording("bad.jsonl", `${HEADER}\nnull\n`), /^microturn: .*bad\.jsonl: recording line 2: /],
      [join(tmpdir(), "microturn-no-such-recording.jsonl"), /^microturn: .*ENOENT.*microturn-no-such-recording\.jsonl/],
    ] as const) {
      const { code, stderr } = await microturn(["replay", file, ...ECHO]);
      expect(code, stderr).toBe(1);
      expect(stderr).toMatch(message);
      expect(stderr.trim().split("\n")).toHaveLength(1);
    }
  }, 25_000);
});

describe("microturn serve that cannot start", () => {
  /** A port something else listens on. */
  async function takenPort(): Promise<{ port: number; close: () => void }> {
    const { createServer } = await import("node:net");
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return { port: (server.address() as { port: number }).port, close: () => server.close() };
  }

  it("says why in one line and exits: a port in use (2), an engine it cannot reach (1)", async () => {
    const taken = await takenPort();
    try {
      const grpcTaken = await microturn(["serve", ...ECHO, "--port", String(taken.port), "--metrics-port", "-1"]);
      expect(grpcTaken.code).toBe(2);
      expect(grpcTaken.stderr).toMatch(/^microturn: --host \/ --port \(MICROTURN_HOST \/ MICROTURN_PORT\): cannot serve gRPC on 127\.0\.0\.1:\d+ \(the port is in use\)$/m);
      expect(grpcTaken.stderr).not.toMatch(/\n\s+at /);

      const httpTaken = await microturn(["serve", ...ECHO, "--port", "0"], { MICROTURN_METRICS_PORT: String(taken.port) });
      expect(httpTaken.code).toBe(2);
      expect(httpTaken.stderr).toMatch(/^microturn: --metrics-port \/ MICROTURN_METRICS_PORT: cannot serve HTTP .*\(the port is in use\); -1 turns it off$/m);
    } finally {
      taken.close();
    }
    const unreachable = await microturn(["serve", "--engine", "sglang-http", "--engine-url", "http://127.0.0.1:1", "--background", "none", "--port", "0", "--metrics-port", "-1"]);
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr.trim().split("\n")).toEqual([expect.stringMatching(/^microturn: cannot start: .*http:\/\/127\.0\.0\.1:1.*ECONNREFUSED/)]);
  }, 60_000);
});
