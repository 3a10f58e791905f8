import { describe, expect, it } from "vitest";
import { ConfigError, configHelp, loadConfig } from "./config.js";

describe("loadConfig", () => {
  it("takes defaults, then environment, then flags", () => {
    expect(loadConfig([], {}).port).toBe(50051);
    expect(loadConfig([], { MICROTURN_PORT: "6000" }).port).toBe(6000);
    expect(loadConfig(["--port", "7000"], { MICROTURN_PORT: "6000" }).port).toBe(7000);
    expect(loadConfig([], {}).engine).toBe("embedded");
    expect(loadConfig([], {}).host).toBe("127.0.0.1");
  });

  it("picks the background transport from the URL when not named", () => {
    expect(loadConfig([], {}).background).toBe("embedded");
    expect(loadConfig(["--background-url", "http://127.0.0.1:30001"], {}).background).toBe("openai");
    expect(loadConfig(["--background", "none"], {}).background).toBe("none");
  });

  it("names the flag or variable at fault", () => {
    expect(() => loadConfig(["--port", "http"], {})).toThrow(/--port: expected an integer/);
    expect(() => loadConfig([], { MICROTURN_ENGINE: "tgi" })).toThrow(/MICROTURN_ENGINE: expected one of embedded, sglang-http, sglang-grpc, echo/);
    expect(() => loadConfig(["--engine", "sglang-http"], {})).toThrow(/needs --engine-url/);
    expect(() => loadConfig(["--background", "openai"], {})).toThrow(/needs --background-url/);
    expect(() => loadConfig(["--port", "70000"], {})).toThrow(ConfigError);
    expect(() => loadConfig(["--max-sessions", "0"], {})).toThrow(/at least 1/);
    expect(() => loadConfig(["--bogus"], {})).toThrow(ConfigError);
  });

  it("documents every flag with its variable", () => {
    const help = configHelp();
    for (const flag of ["--host", "--port", "--engine", "--model", "--engine-url", "--background-url", "--background-model", "--metrics-port"]) {
      expect(help).toContain(flag);
    }
    expect(help).toContain("MICROTURN_MODEL");
  });
});
