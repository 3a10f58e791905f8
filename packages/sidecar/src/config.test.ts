import { describe, expect, it } from "vitest";
import { ConfigError, configHelp, loadConfig, parseAllowedOrigins } from "./config.js";

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
    // A negative value after a space (parseArgs alone takes "-1" for an option), and -1 to turn HTTP off.
    expect(loadConfig(["--metrics-port", "-1"], {}).httpPort).toBe(-1);
    // An IPv6 host as URLs write it, or bare.
    expect(loadConfig(["--host", "[::1]"], {}).host).toBe("::1");
    expect(loadConfig([], { MICROTURN_HOST: "::" }).host).toBe("::");
    expect(() => loadConfig(["--max-sessions", "-5"], {})).toThrow(/--max-sessions \/ MICROTURN_MAX_SESSIONS must be at least 1, got -5/);
    expect(() => loadConfig(["--max-sessions", "-x"], {})).toThrow(ConfigError);
    expect(() => loadConfig(["--bogus"], {})).toThrow(ConfigError);
  });

  it("refuses timer settings a timer cannot wait (Node fires 2^31 ms and more after 1 ms) and tool or task deadlines of 0", () => {
    expect(loadConfig(["--resume-grace-ms", "2147483647"], {}).resumeGraceMs).toBe(2 ** 31 - 1);
    for (const flag of ["--resume-grace-ms", "--tool-timeout-ms", "--background-timeout-ms", "--drain-ms"]) {
      expect(() => loadConfig([flag, "2147483648"], {}), flag).toThrow(new RegExp(`${flag} / MICROTURN_\\w+ must be at most 2147483647`));
    }
    expect(() => loadConfig(["--tool-timeout-ms", "0"], {})).toThrow(/--tool-timeout-ms \/ MICROTURN_TOOL_TIMEOUT_MS must be at least 1, got 0/);
    expect(() => loadConfig([], { MICROTURN_BACKGROUND_TIMEOUT_MS: "0" })).toThrow(/--background-timeout-ms \/ MICROTURN_BACKGROUND_TIMEOUT_MS must be at least 1/);
    // 0 still means "none" where that is what the code does with it.
    expect(loadConfig(["--resume-grace-ms", "0", "--drain-ms", "0"], {})).toMatchObject({ resumeGraceMs: 0, drainMs: 0 });
  });

  it("spins for chunks only when asked, for up to 64 sessions unless told otherwise, within half a chunk", () => {
    expect(loadConfig([], {})).toMatchObject({ spinWindowMs: 0, spinMaxSessions: 64 });
    expect(loadConfig(["--spin-window-ms", "2"], { MICROTURN_SPIN_MAX_SESSIONS: "8" })).toMatchObject({ spinWindowMs: 2, spinMaxSessions: 8 });
    expect(() => loadConfig(["--max-output-tokens", "16", "--max-output-tokens-ceiling", "8"], {})).toThrow(
      /--max-output-tokens-ceiling \/ MICROTURN_MAX_OUTPUT_TOKENS_CEILING \(8\) is below --max-output-tokens \/ MICROTURN_MAX_OUTPUT_TOKENS \(16\), the default a session gets/,
    );
    expect(() => loadConfig(["--max-output-tokens", "4294967296"], {})).toThrow(/--max-output-tokens \/ MICROTURN_MAX_OUTPUT_TOKENS must be at most 4294967295/);
    expect(() => loadConfig(["--max-output-tokens-ceiling=-1"], {})).toThrow(/must not be negative, got -1/);
    expect(loadConfig(["--max-output-tokens", "6", "--max-output-tokens-ceiling", "32"], {})).toMatchObject({ maxOutputTokensPerTurn: 6, maxOutputTokensCeiling: 32 });
    expect(() => loadConfig(["--spin-window-ms", "51"], {})).toThrow(/--spin-window-ms \/ MICROTURN_SPIN_WINDOW_MS must be at most 50/);
    expect(() => loadConfig(["--spin-window-ms=-1"], {})).toThrow(/--spin-window-ms \/ MICROTURN_SPIN_WINDOW_MS must not be negative/);
    expect(() => loadConfig([], { MICROTURN_SPIN_MAX_SESSIONS: "-5" })).toThrow(/--spin-max-sessions \/ MICROTURN_SPIN_MAX_SESSIONS must not be negative/);
  });

  it("moves sessions between sidecars only with a peer key and an address peers can reach, in this sidecar's TLS mode", () => {
    const key = "k".repeat(32);
    expect(loadConfig([], {})).toMatchObject({ peerKey: "", advertiseUrl: "" });
    expect(loadConfig(["--peer-key", key, "--advertise-url", "grpc://10.0.0.7:50051"], {})).toMatchObject({ peerKey: key, advertiseUrl: "grpc://10.0.0.7:50051" });
    expect(loadConfig([], { MICROTURN_PEER_KEY: key, MICROTURN_ADVERTISE_URL: "grpc://sidecar-0:50051" }).advertiseUrl).toBe("grpc://sidecar-0:50051");
    expect(() => loadConfig(["--peer-key", key], {})).toThrow(/--peer-key \/ MICROTURN_PEER_KEY and --advertise-url \/ MICROTURN_ADVERTISE_URL go together/);
    expect(() => loadConfig(["--advertise-url", "grpc://a:1"], {})).toThrow(/go together/);
    expect(() => loadConfig(["--peer-key", "short", "--advertise-url", "grpc://a:1"], {})).toThrow(/at least 32 characters .* got 5/);
    expect(() => loadConfig(["--peer-key", key, "--advertise-url", "http://a:1"], {})).toThrow(/must be grpc:\/\/host:port or grpcs:\/\/host:port, got "http:\/\/a:1"/);
    expect(() => loadConfig(["--peer-key", key, "--advertise-url", "grpcs://a:1"], {})).toThrow(/serves gRPC in plaintext: advertise grpc:\/\//);
    expect(() => loadConfig(["--peer-key", key, "--advertise-url", "grpc://a:1", "--tls-cert", "c.pem", "--tls-key", "k.pem"], {})).toThrow(/over TLS: advertise grpcs:\/\//);
    expect(() => loadConfig(["--peer-ca", "ca.pem"], {})).toThrow(/--peer-ca \/ MICROTURN_PEER_CA is for reaching peers/);
    const peers = ["--peer-key", key, "--advertise-url", "grpc://a:1"];
    expect(loadConfig([...peers, "--peer-keys-accepted", `${"n".repeat(32)},${"o".repeat(40)}`], {}).peerKeysAccepted).toBe(`${"n".repeat(32)},${"o".repeat(40)}`);
    expect(() => loadConfig([...peers, "--peer-keys-accepted", `${"n".repeat(32)},short`], {})).toThrow(/key 2 is shorter than 32 characters/);
    expect(() => loadConfig(["--peer-keys-accepted", "n".repeat(32)], {})).toThrow(/goes with --peer-key/);
    expect(loadConfig(peers, {}).moveLeaseMs).toBe(10_000);
    expect(loadConfig(peers, { MICROTURN_MOVE_LEASE_MS: "2500" }).moveLeaseMs).toBe(2500);
    expect(() => loadConfig([...peers, "--move-lease-ms", "0"], {})).toThrow(/--move-lease-ms \/ MICROTURN_MOVE_LEASE_MS must be at least 1, got 0/);
    expect(() => loadConfig([...peers, "--resume-grace-ms", "5000"], {})).toThrow(/--move-lease-ms \/ MICROTURN_MOVE_LEASE_MS \(10000\) must be shorter than --resume-grace-ms \/ MICROTURN_RESUME_GRACE_MS \(5000\)/);
    expect(loadConfig([...peers, "--resume-grace-ms", "5000", "--move-lease-ms", "2000"], {}).moveLeaseMs).toBe(2000);
  });

  it("refuses the same port for gRPC and HTTP (it failed at listen with EADDRINUSE), but not two free ones", () => {
    expect(() => loadConfig(["--port", "7000", "--metrics-port", "7000"], {})).toThrow(ConfigError);
    expect(() => loadConfig([], { MICROTURN_PORT: "9464" })).toThrow(/--port \/ MICROTURN_PORT and --metrics-port \/ MICROTURN_METRICS_PORT are both 9464/);
    expect(loadConfig(["--port", "0", "--metrics-port", "0"], {})).toMatchObject({ port: 0, httpPort: 0 });
    expect(loadConfig(["--port", "7000", "--metrics-port=-1"], {}).httpPort).toBe(-1);
  });

  it("takes web origins for the WebSocket endpoint as browsers write them, or *, and refuses anything else", () => {
    expect(loadConfig([], {}).allowedOrigins).toBe("");
    expect(parseAllowedOrigins("")).toEqual([]);
    const config = loadConfig(["--allowed-origins", "https://App.Example.com:443, http://localhost:8080,http://[::1]:3000"], {});
    expect(parseAllowedOrigins(config.allowedOrigins)).toEqual(["https://app.example.com", "http://localhost:8080", "http://[::1]:3000"]);
    expect(parseAllowedOrigins(loadConfig([], { MICROTURN_ALLOWED_ORIGINS: "*" }).allowedOrigins)).toEqual(["*"]);
    expect(() => loadConfig(["--allowed-origins", "app.example.com"], {})).toThrow(
      /--allowed-origins \/ MICROTURN_ALLOWED_ORIGINS: "app.example.com" is not an origin: write http\(s\):\/\/host\[:port\], or \* for any/,
    );
    expect(() => loadConfig([], { MICROTURN_ALLOWED_ORIGINS: "https://app.example.com/" })).toThrow(
      /--allowed-origins \/ MICROTURN_ALLOWED_ORIGINS: "https:\/\/app.example.com\/" has a path or query; an origin is scheme:\/\/host\[:port\] \(https:\/\/app.example.com\)/,
    );
    for (const bad of ["https://app.example.com/app", "https://app.example.com?x=1", "ftp://files.example.com", "https://user@app.example.com", "https://a.example:99999", "https://*.example.com", "null"]) {
      expect(() => loadConfig(["--allowed-origins", `https://ok.example,${bad}`], {}), bad).toThrow(ConfigError);
    }
  });

  it("documents every flag with its variable", () => {
    const help = configHelp();
    for (const flag of ["--host", "--port", "--engine", "--model", "--engine-url", "--background-url", "--background-model", "--metrics-port"]) {
      expect(help).toContain(flag);
    }
    expect(help).toContain("MICROTURN_MODEL");
  });
});
