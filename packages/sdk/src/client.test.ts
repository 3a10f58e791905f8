import { afterEach, describe, expect, it, vi } from "vitest";
import { Microturn } from "./client.js";
import { InvalidInputError } from "./core/session-errors.js";
import { parseEndpoint } from "./internal/url.js";
import { startFakeSidecar } from "./testing/fake-sidecar.js";

afterEach(() => {
  vi.unstubAllEnvs();
});

describe("Microturn options", () => {
  it("fails at construction without a URL, naming MICROTURN_URL", () => {
    vi.stubEnv("MICROTURN_URL", "");
    expect(() => new Microturn()).toThrow(InvalidInputError);
    expect(() => new Microturn()).toThrow(/MICROTURN_URL/);
  });

  it("falls back to MICROTURN_URL and MICROTURN_API_KEY", async () => {
    const fake = await startFakeSidecar({ apiKey: "from-env" });
    try {
      vi.stubEnv("MICROTURN_URL", fake.url);
      vi.stubEnv("MICROTURN_API_KEY", "from-env");
      const client = new Microturn({ clock: "manual" });
      expect(client.url).toBe(fake.url);
      const session = await client.connect();
      expect(session.state).toBe("open");
      await session.close();
    } finally {
      await fake.close();
    }
  });

  it("parses every URL form and refuses the rest", () => {
    expect(parseEndpoint("grpc://127.0.0.1:7700")).toEqual({ kind: "grpc", address: "127.0.0.1:7700", tls: false });
    expect(parseEndpoint("grpcs://sidecar.example:443")).toEqual({ kind: "grpc", address: "sidecar.example:443", tls: true });
    expect(parseEndpoint("localhost:7700")).toEqual({ kind: "grpc", address: "localhost:7700", tls: false });
    expect(parseEndpoint("[::1]:7700")).toEqual({ kind: "grpc", address: "[::1]:7700", tls: false });
    expect(parseEndpoint("wss://x.example/v1/converse")).toEqual({ kind: "websocket", url: "wss://x.example/v1/converse" });
    expect(parseEndpoint("unix:///run/microturn/sidecar.sock")).toEqual({ kind: "grpc", address: "unix:/run/microturn/sidecar.sock", tls: false });
    expect(parseEndpoint("unix:/run/microturn/sidecar.sock")).toEqual({ kind: "grpc", address: "unix:/run/microturn/sidecar.sock", tls: false });
    for (const bad of ["http://x:1", "grpc://x", "just-a-host", "", "ws://", "unix:"]) {
      expect(() => parseEndpoint(bad), bad).toThrow(InvalidInputError);
    }
  });
});
