// docker-compose.yml stays true to the code: the sidecar's environment is a
// valid config, the SGLang pin matches sglang-patch/SGLANG_VERSION, and the
// interaction server runs with streaming sessions and the patch's MoE runner.
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { loadConfig } from "../src/config.js";

const root = join(__dirname, "../../..");
const text = readFileSync(join(root, "docker-compose.yml"), "utf8");
/** Compose interpolation with every variable unset: ${VAR:-default} -> default. */
const resolved = text.replace(/\$\{[A-Z_]+:-([^}]*)\}/g, "$1");
const compose = parse(resolved) as {
  services: Record<string, { command?: string[]; environment?: Record<string, string>; image?: string; build?: unknown; healthcheck?: { test: string[] } }>;
};

describe("docker-compose.yml", () => {
  it("has the three services, each with an image", () => {
    expect(Object.keys(compose.services).sort()).toEqual(["background", "interaction", "sidecar"]);
    for (const service of Object.values(compose.services)) expect(service.image).toBeTruthy();
  });

  it("pins the SGLang release written in sglang-patch/SGLANG_VERSION", () => {
    const pinned = readFileSync(join(root, "sglang-patch/SGLANG_VERSION"), "utf8").trim();
    const defaults = [...text.matchAll(/\$\{SGLANG_VERSION:-([^}]*)\}/g)].map((m) => m[1]);
    expect(defaults.length).toBeGreaterThan(0);
    expect(new Set(defaults)).toEqual(new Set([pinned]));
  });

  it("gives the sidecar an environment its config accepts", () => {
    const env = compose.services.sidecar!.environment!;
    const config = loadConfig([], env);
    expect(config).toMatchObject({ engine: "sglang-grpc", engineUrl: "interaction:50061", background: "sglang-grpc", host: "0.0.0.0", port: 50051, spinWindowMs: 2 });
    // The interaction server serves StreamingSession on the port the sidecar dials.
    expect(compose.services.interaction!.environment!.MICROTURN_GRPC_PORT).toBe(config.engineUrl.split(":")[1]);
    // Its health check probes that port too: a server without the gRPC service is not healthy.
    expect(compose.services.interaction!.healthcheck!.test.join(" ")).toContain(`'127.0.0.1', ${config.engineUrl.split(":")[1]})`);
  });

  it("sends the sidecar's image build only what its Dockerfile copies, not models, venvs or build output", () => {
    const ignored = readFileSync(join(root, ".dockerignore"), "utf8").split("\n").map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("#"));
    for (const heavy of [".git", ".venv", "models", ".models", "**/node_modules", "**/dist"]) expect(ignored).toContain(heavy);
    const dockerfile = readFileSync(join(root, "packages/sidecar/Dockerfile"), "utf8");
    const sources = [...dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) => m[1]!.split(/\s+/));
    expect(sources).toContain("packages");
    for (const source of sources) {
      expect(existsSync(join(root, source)), source).toBe(true);
      // A plain pattern that names the source or a folder above it would leave it out of the context.
      expect(ignored.filter((pattern) => !pattern.includes("*") && (source === pattern || source.startsWith(`${pattern}/`))), source).toEqual([]);
    }
  });

  it("runs the interaction model with streaming sessions and gather+gemv", () => {
    const command = compose.services.interaction!.command!;
    expect(command).toContain("--enable-streaming-session");
    expect(command).toContain("--moe-runner-backend=gather_gemv");
    expect(compose.services.background!.command!).toContain("--grpc-port=30001");
  });

  it.skipIf(!existsSync("/usr/bin/docker-compose"))("passes docker-compose config", () => {
    expect(() => execFileSync("docker-compose", ["-f", join(root, "docker-compose.yml"), "config", "-q"], { stdio: "pipe" })).not.toThrow();
  });
});
