import { describe, expect, it } from "vitest";
import { registerBuiltinTools } from "./builtins.js";
import { ToolError } from "./errors.js";
import { ServerToolRegistry } from "./registry.js";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function registry(): ServerToolRegistry {
  return new ServerToolRegistry({ defaultTimeoutMs: 200 }).register({
    name: "book_table",
    description: "Books a table.",
    parameters: {
      type: "object",
      properties: { people: { type: "integer", minimum: 1 }, time: { type: "string" }, seating: { type: "string", enum: ["inside", "outside"] } },
      required: ["people", "time"],
      additionalProperties: false,
    },
    handler: (args: Record<string, unknown>) => ({ booked: true, ...args }),
  });
}

describe("ServerToolRegistry", () => {
  it("runs a tool with valid arguments", async () => {
    const outcome = await registry().execute("book_table", '{"people": 2, "time": "19:30", "seating": "outside"}');
    expect(outcome).toEqual({ status: "ok", isError: false, outputJson: '{"booked":true,"people":2,"time":"19:30","seating":"outside"}' });
  });

  it.each([
    ['{"time": "19:30"}', "arguments.people is required"],
    ['{"people": 2.5, "time": "19:30"}', "arguments.people must be an integer"],
    ['{"people": "two", "time": "19:30"}', "arguments.people must be an integer, got string"],
    ['{"people": 0, "time": "19:30"}', "arguments.people must be >= 1"],
    ['{"people": 2, "time": "19:30", "seating": "roof"}', 'must be one of "inside", "outside"'],
    ['{"people": 2, "time": "19:30", "pets": true}', "arguments.pets is not a known argument"],
    ["[1, 2]", "must be a JSON object"],
    ["{people: 2}", "not JSON"],
  ])("refuses %s with a clear message", async (argumentsJson, message) => {
    const outcome = await registry().execute("book_table", argumentsJson);
    expect(outcome.status).toBe("error");
    expect(outcome.isError).toBe(true);
    expect(outcome.errorCode).toBe("invalid_arguments");
    expect(JSON.parse(outcome.outputJson).error).toContain(message);
  });

  it("reports an unknown tool, a throwing handler and a timeout as outcomes", async () => {
    const r = registry()
      .register({ name: "boom", description: "", parameters: { type: "object" }, handler: () => { throw new Error("disk full"); } })
      .register({ name: "slow", description: "", parameters: { type: "object" }, handler: () => sleep(1_000), timeoutMs: 50 });
    expect((await r.execute("nope", "{}")).errorCode).toBe("unknown_tool");
    const boom = await r.execute("boom", "{}");
    expect(boom.errorCode).toBe("failed");
    expect(boom.outputJson).toContain("disk full");
    const started = Date.now();
    const slow = await r.execute("slow", "{}");
    expect(slow.status).toBe("timeout");
    expect(Date.now() - started).toBeLessThan(900);
  });

  it("a result that cannot be written as JSON is a failed call, not an exception", async () => {
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    const r = registry()
      .register({ name: "big", description: "", parameters: { type: "object" }, handler: () => ({ n: 10n }) })
      .register({ name: "loop", description: "", parameters: { type: "object" }, handler: () => cycle });
    for (const name of ["big", "loop"]) {
      const outcome = await r.execute(name, "{}");
      expect(outcome).toMatchObject({ status: "error", isError: true, errorCode: "failed" });
      expect(JSON.parse(outcome.outputJson).error).toMatch(/cannot be written as JSON/);
    }
  });

  it("aborts the handler's signal on timeout and honours the caller's signal", async () => {
    let seen: AbortSignal | undefined;
    const r = new ServerToolRegistry().register({
      name: "wait",
      description: "",
      parameters: { type: "object" },
      handler: (_args, { signal }) => {
        seen = signal;
        return new Promise(() => {});
      },
    });
    const controller = new AbortController();
    const pending = r.execute("wait", "{}", { signal: controller.signal });
    await sleep(10);
    controller.abort();
    expect((await pending).status).toBe("cancelled");
    expect(seen?.aborted).toBe(true);
  });

  it("refuses bad definitions with typed errors", () => {
    const r = registry();
    const attempt = (fn: () => void) => {
      try {
        fn();
      } catch (err) {
        return ToolError.isInstance(err) ? err.code : "other";
      }
      return "none";
    };
    expect(attempt(() => r.register({ name: "book_table", description: "", parameters: {}, handler: () => 1 }))).toBe("already_registered");
    expect(attempt(() => r.register({ name: "has space", description: "", parameters: {}, handler: () => 1 }))).toBe("invalid_definition");
    expect(attempt(() => r.register({ name: "t", description: "", parameters: { type: "tuple" as "object" }, handler: () => 1 }))).toBe("invalid_definition");
  });

  it("lists its tools for the background model and the wire", () => {
    const r = registerBuiltinTools(new ServerToolRegistry());
    expect(r.names).toEqual(["get_time", "calculator"]);
    expect(r.chatToolSpecs()[1]?.function.parameters).toMatchObject({ required: ["expression"] });
    expect(JSON.parse(r.toolSpecs()[0]?.parametersJson ?? "")).toMatchObject({ type: "object" });
  });
});

describe("built-in tools", () => {
  const fixed = Date.UTC(2026, 4, 14, 9, 30, 0);
  const r = registerBuiltinTools(new ServerToolRegistry(), { now: () => fixed, defaultTimeZone: "UTC" });

  it("get_time reports the time in the asked time zone", async () => {
    const outcome = await r.execute("get_time", '{"timezone": "Europe/Lisbon"}');
    const out = JSON.parse(outcome.outputJson);
    expect(out).toMatchObject({ iso: "2026-05-14T09:30:00.000Z", unixMs: fixed, timezone: "Europe/Lisbon" });
    expect(out.local).toContain("10:30:00"); // Lisbon is UTC+1 in May
    expect(JSON.parse((await r.execute("get_time", "{}")).outputJson).timezone).toBe("UTC");
    const bad = await r.execute("get_time", '{"timezone": "Mars/Olympus"}');
    expect(bad.errorCode).toBe("invalid_arguments");
    expect(bad.outputJson).toContain("Mars/Olympus");
  });

  it("calculator evaluates and explains what it cannot", async () => {
    expect(JSON.parse((await r.execute("calculator", '{"expression": "(12.5 * 3) / 5"}')).outputJson)).toEqual({ expression: "(12.5 * 3) / 5", result: 7.5 });
    const bad = await r.execute("calculator", '{"expression": "2 +* 3"}');
    expect(bad.errorCode).toBe("invalid_arguments");
    expect(bad.outputJson).toContain("character 3");
  });
});
