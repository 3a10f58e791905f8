// The browser entry must not reach grpc-js through the SDK's own modules.
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { Microturn } from "./browser.js";
import { ConnectionError } from "./core/error.js";
import { InvalidInputError } from "./core/session-errors.js";

const here = dirname(fileURLToPath(import.meta.url));

function importGraph(entry: string): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  const visit = (file: string): void => {
    if (graph.has(file)) return;
    const source = readFileSync(file, "utf8");
    const specifiers = [...source.matchAll(/^(?:import|export)\s[^;]*?from\s+"([^"]+)"/gms)].map((m) => m[1]!);
    graph.set(file, specifiers);
    for (const specifier of specifiers) {
      if (specifier.startsWith(".")) visit(resolve(dirname(file), specifier.replace(/\.js$/, ".ts")));
    }
  };
  visit(entry);
  return graph;
}

describe("browser entry", () => {
  it("imports no grpc-js (directly or through SDK modules)", () => {
    const graph = importGraph(resolve(here, "browser.ts"));
    const offenders = [...graph].filter(([, specifiers]) => specifiers.some((s) => s.startsWith("@grpc/")));
    expect(graph.size).toBeGreaterThan(5);
    expect(offenders.map(([file]) => file)).toEqual([]);
  });

  it("the Node entry does reach grpc-js (sanity check of the scan)", () => {
    const graph = importGraph(resolve(here, "index.ts"));
    expect([...graph.values()].some((specifiers) => specifiers.includes("@grpc/grpc-js"))).toBe(true);
  });

  it("refuses a URL it cannot speak to when the client is made, not at the first session", () => {
    expect(() => new Microturn({ url: "grpc://127.0.0.1:50051" })).toThrow(InvalidInputError);
    expect(() => new Microturn({ url: "grpc://127.0.0.1:50051" })).toThrow(/WebSocket only/);
    expect(new Microturn({ url: "ws://127.0.0.1:9464" }).endpoint.kind).toBe("websocket");
  });

  it("turns a WebSocket constructor's throw (ws:// from an https page) into a ConnectionError with the cause", async () => {
    const refusal = new DOMException("An insecure WebSocket connection may not be initiated from a page loaded over HTTPS.", "SecurityError");
    class MixedContentWebSocket {
      constructor() {
        throw refusal;
      }
    }
    const session = new Microturn({ url: "ws://127.0.0.1:1", WebSocket: MixedContentWebSocket as never }).session();
    let closeError: unknown;
    session.on("close", ({ error }) => (closeError = error));
    const error: unknown = await session.connect().catch((e: unknown) => e);
    expect(ConnectionError.isInstance(error)).toBe(true);
    expect((error as Error).message).toMatch(/SecurityError/);
    expect((error as Error).cause).toBe(refusal);
    expect(closeError).toBe(error);
  });
});
