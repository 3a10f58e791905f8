// @microturn/sdk/testing as an app would use it.
import { describe, expect, it } from "vitest";
import { TaskStatus } from "@microturn/protocol";
import { createScriptedSession, startFakeSidecar } from "./testing.js";
import { Microturn } from "./client.js";
import { SessionClosedError } from "./core/session-errors.js";

describe("createScriptedSession", () => {
  it("answers chunks from the reply script and behaves like a session", async () => {
    const session = await createScriptedSession({ replies: ["hello", null, { text: "bye", durationMs: 120 }] });
    const texts: string[] = [];
    const reading = (async () => {
      for await (const text of session.text()) texts.push(text);
    })();
    const outputs: Array<[number, boolean]> = [];
    session.on("output", (chunk) => outputs.push([chunk.seq, chunk.silent]));
    session.sendChunk({ text: "hi" });
    session.flushChunk();
    session.flushChunk();
    session.flushChunk();
    await new Promise<void>((resolve) => session.on("output", () => outputs.length === 4 && resolve()));
    await session.close();
    await reading;
    expect(texts).toEqual(["hello", "bye"]);
    expect(outputs).toEqual([
      [0, false],
      [1, true],
      [2, false],
      [3, true],
    ]);
    expect(session.server.accepted).toEqual([0, 1, 2, 3]);
    expect(session.server.chunks[0]!.text).toBe("hi");
    expect(() => session.sendText("late")).toThrow(SessionClosedError);
  });

  it("runs tools declared in the config and scripted background tasks", async () => {
    const session = await createScriptedSession({
      config: { tools: [{ name: "weather", description: "weather for a city", handler: (args) => `sunny in ${(args as { city: string }).city}` }] },
      background: (task) => [{ status: TaskStatus.TASK_STATUS_DONE, content: `done: ${task.task}` }],
    });
    const result = await session.server.callTool("weather", { city: "Oslo" });
    expect(result).toMatchObject({ outputJson: "sunny in Oslo", isError: false });
    expect(await session.delegate("summarise")).toBe("done: summarise");
    await session.close();
  });
});

describe("startFakeSidecar", () => {
  it("serves real gRPC on loopback", async () => {
    const fake = await startFakeSidecar({ reply: (chunk) => ({ text: `#${chunk.seq}` }) });
    try {
      expect(fake.url).toMatch(/^grpc:\/\/127\.0\.0\.1:\d+$/);
      const session = await new Microturn({ url: fake.url, clock: "manual" }).connect();
      const texts: string[] = [];
      session.on("output", (chunk) => texts.push(chunk.text));
      session.flushChunk();
      session.flushChunk();
      await fake.waitFor(() => texts.length === 2);
      expect(texts).toEqual(["#0", "#1"]);
      await session.close();
      expect(fake.session().ended).toBe(true);
    } finally {
      await fake.close();
    }
  });
});
