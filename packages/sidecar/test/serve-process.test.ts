// The `microturn serve` process itself: a rejection no code handled is logged
// and counted, and every session goes on; SIGTERM still drains and exits 0.
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { spawnTsx } from "./helpers/spawn-tsx.js";

describe("serve process", () => {
  it("survives an unhandled promise rejection: logged with its stack, counted on /metrics, still serving", async () => {
    const script = fileURLToPath(new URL("./helpers/serve-with-stray-rejection.ts", import.meta.url));
    const run = spawnTsx(script);
    const { child, exited } = run;
    try {
      for (let waited = 0; !/http=\S+/.test(run.stdout) && waited < 20_000; waited += 50) await new Promise((r) => setTimeout(r, 50));
      const http = /http=(\S+)/.exec(run.stdout)?.[1];
      expect(http, `no ready line; stderr: ${run.stderr}`).toBeDefined();
      for (let waited = 0; !run.stderr.includes("unhandled promise rejection") && waited < 5000; waited += 50) await new Promise((r) => setTimeout(r, 50));
      expect(run.stderr).toContain("unhandled promise rejection (a bug); the sidecar goes on");
      expect(run.stderr).toContain("stray rejection from a test");
      const metrics = await (await fetch(`http://${http}/metrics`)).text();
      expect(metrics).toMatch(/^microturn_unhandled_rejections_total 1$/m);
      const health = await fetch(`http://${http}/healthz`);
      expect(health.status).toBe(200);
      child.kill("SIGTERM");
      expect(await exited).toBe(0);
    } finally {
      child.kill("SIGKILL");
    }
  }, 30_000);
});
