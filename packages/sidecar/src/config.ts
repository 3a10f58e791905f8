// Every setting of the sidecar in one typed object: command-line flags first,
// then MICROTURN_* environment variables, then defaults. Nothing else reads
// process.env or argv, save MICROTURN_MODEL_DIR (where the tiny test model is
// cached: a tooling knob, not a setting of a running sidecar).
import { parseArgs } from "node:util";
import { MIN_PEER_KEY_CHARS, parsePeerUrl } from "./handoff/peer-key.js";
import { MAX_TIMER_MS } from "./timers.js";

export const ENGINE_KINDS = ["embedded", "sglang-http", "sglang-grpc", "echo"] as const;
export type EngineKind = (typeof ENGINE_KINDS)[number];

export const BACKGROUND_KINDS = ["none", "embedded", "openai", "sglang-grpc", "sglang-smg-grpc"] as const;
export type BackgroundKind = (typeof BACKGROUND_KINDS)[number];

export interface SidecarConfig {
  host: string;
  port: number;
  /** A Unix socket path the gRPC service is also served on (plaintext, mode 0660); empty: none. */
  socket: string;
  /** Port of the HTTP server for /metrics, /healthz and the WebSocket endpoint; -1 disables it. */
  httpPort: number;
  engine: EngineKind;
  /** GGUF path for the embedded engine; empty writes and uses the tiny random model. */
  model: string;
  engineUrl: string;
  background: BackgroundKind;
  backgroundUrl: string;
  backgroundModel: string;
  backgroundApiKey: string;
  /** Bearer token clients must present; empty accepts any client. */
  apiKey: string;
  /**
   * Web origins whose pages may open WebSocket sessions (comma-separated, `*`: any); empty: loopback
   * pages only, or any page when apiKey is set. Clients that send no Origin (not browsers) always may.
   */
  allowedOrigins: string;
  /** PEM certificate chain and key: both servers (gRPC, HTTP) speak TLS; empty: plaintext. */
  tlsCert: string;
  tlsKey: string;
  /** PEM CA bundle: clients must present a certificate it signed (mutual TLS); empty: none asked. */
  tlsClientCa: string;
  /** How often the TLS files are checked for new material (a renewed certificate); 0: only on SIGHUP. */
  tlsReloadMs: number;
  /** Secret the sidecars of a deployment share so sessions move between them; empty: sessions stay where they began. */
  peerKey: string;
  /** More peer keys accepted (comma-separated), not used to seal or prove: for changing the key. */
  peerKeysAccepted: string;
  /** How long a peer that took a session has to confirm it before another may take it instead, ms. */
  moveLeaseMs: number;
  /** How peers reach this sidecar's gRPC port, grpc://host:port or grpcs://host:port; needed with peerKey. */
  advertiseUrl: string;
  /** PEM CA bundle peers' certificates chain to (grpcs:// peers); empty: the system's CAs. */
  peerCa: string;
  maxSessions: number;
  /** Output budget per micro-turn, tokens. */
  maxOutputTokensPerTurn: number;
  /** 0: maxOutputTokensPerTurn. */
  maxOutputTokensCeiling: number;
  /** Input chunks a session may queue before QUEUE_FULL. */
  maxQueuedChunks: number;
  /** KV capacity asked of the engine per session, tokens; 0 takes the engine's default. */
  sessionTokens: number;
  /** How far back in input time a barge-in can cut; the session keeps that much input. */
  rewindHorizonMs: number;
  resumeGraceMs: number;
  backgroundMaxConcurrent: number;
  backgroundTimeoutMs: number;
  toolTimeoutMs: number;
  /** Folder for session recordings; empty disables recording. */
  recordDir: string;
  /** Time SIGTERM gives live sessions to move away before exit. */
  drainMs: number;
  /** The loop spins from this long before a live session's next chunk is due until it arrives (or this long after); 0: it sleeps. */
  spinWindowMs: number;
  /** Sessions above which the loop no longer spins for their chunks. */
  spinMaxSessions: number;
  logLevel: "debug" | "info" | "warn" | "error";
}

interface Setting {
  flag: string;
  env: string;
  help: string;
  kind: "string" | "int" | "enum";
  values?: readonly string[];
  default: string;
}

/** The table behind --help, the parser and docs/deployment.md. */
export const SETTINGS: Record<keyof SidecarConfig, Setting> = {
  host: { flag: "host", env: "MICROTURN_HOST", kind: "string", default: "127.0.0.1", help: "gRPC listen address" },
  port: { flag: "port", env: "MICROTURN_PORT", kind: "int", default: "50051", help: "gRPC port (0 picks a free one)" },
  socket: {
    flag: "socket",
    env: "MICROTURN_SOCKET",
    kind: "string",
    default: "",
    help: "also serve gRPC on this Unix socket, for clients on the same host (unix:///path): plaintext, file mode 0660, the API key still applies",
  },
  httpPort: {
    flag: "metrics-port",
    env: "MICROTURN_METRICS_PORT",
    kind: "int",
    default: "9464",
    help: "HTTP port for /metrics, /healthz and WebSocket /v1/converse (-1 disables)",
  },
  engine: { flag: "engine", env: "MICROTURN_ENGINE", kind: "enum", values: ENGINE_KINDS, default: "embedded", help: "interaction engine (echo: model-free, for load tests)" },
  model: { flag: "model", env: "MICROTURN_MODEL", kind: "string", default: "", help: "GGUF for the embedded engine (default: tiny random model)" },
  engineUrl: { flag: "engine-url", env: "MICROTURN_ENGINE_URL", kind: "string", default: "", help: "SGLang URL (http://… or host:port for gRPC)" },
  background: {
    flag: "background",
    env: "MICROTURN_BACKGROUND",
    kind: "enum",
    values: BACKGROUND_KINDS,
    default: "",
    help: "background model transport: openai (any /v1/chat/completions), sglang-grpc (SGLang's native gRPC, --grpc-port), sglang-smg-grpc (SGLang's SMG scheduler service, --smg-grpc-mode); default: openai when --background-url is set, else embedded",
  },
  backgroundUrl: { flag: "background-url", env: "MICROTURN_BACKGROUND_URL", kind: "string", default: "", help: "background model URL" },
  backgroundModel: { flag: "background-model", env: "MICROTURN_BACKGROUND_MODEL", kind: "string", default: "default", help: "background model name" },
  backgroundApiKey: { flag: "background-api-key", env: "MICROTURN_BACKGROUND_API_KEY", kind: "string", default: "", help: "API key for the background model" },
  apiKey: { flag: "api-key", env: "MICROTURN_API_KEY", kind: "string", default: "", help: "bearer token clients must send (empty: none)" },
  allowedOrigins: {
    flag: "allowed-origins",
    env: "MICROTURN_ALLOWED_ORIGINS",
    kind: "string",
    default: "",
    help: "web pages that may open WebSocket sessions: origins, comma-separated (https://app.example.com), or * for any (empty: pages on localhost, *.localhost, 127.0.0.0/8 or [::1], or any page when --api-key is set; clients that send no Origin always may)",
  },
  tlsCert: {
    flag: "tls-cert",
    env: "MICROTURN_TLS_CERT",
    kind: "string",
    default: "",
    help: "PEM certificate chain file: gRPC and the HTTP port speak TLS (grpcs://, wss://, https://); needs --tls-key",
  },
  tlsKey: { flag: "tls-key", env: "MICROTURN_TLS_KEY", kind: "string", default: "", help: "PEM private key file of --tls-cert" },
  tlsClientCa: {
    flag: "tls-client-ca",
    env: "MICROTURN_TLS_CLIENT_CA",
    kind: "string",
    default: "",
    help: "PEM CA bundle file: clients must present a certificate it signed (mutual TLS)",
  },
  tlsReloadMs: {
    flag: "tls-reload-ms",
    env: "MICROTURN_TLS_RELOAD_MS",
    kind: "int",
    default: "60000",
    help: "check the TLS files this often and serve new material (a renewed certificate) without a restart; SIGHUP checks at once (0: SIGHUP only)",
  },
  peerKey: {
    flag: "peer-key",
    env: "MICROTURN_PEER_KEY",
    kind: "string",
    default: "",
    help: `secret shared by the sidecars of a deployment (at least ${MIN_PEER_KEY_CHARS} characters): a client that resumes on another sidecar has its session moved there (needs --advertise-url)`,
  },
  peerKeysAccepted: {
    flag: "peer-keys-accepted",
    env: "MICROTURN_PEER_KEYS_ACCEPTED",
    kind: "string",
    default: "",
    help: "more peer keys, comma-separated, whose tokens and Take calls are still accepted (never used to seal or call): for changing --peer-key across a deployment without a pause",
  },
  advertiseUrl: {
    flag: "advertise-url",
    env: "MICROTURN_ADVERTISE_URL",
    kind: "string",
    default: "",
    help: "how the other sidecars reach this one's gRPC port: grpc://host:port, or grpcs://host:port with TLS (the pod's own address, not the balancer's)",
  },
  moveLeaseMs: {
    flag: "move-lease-ms",
    env: "MICROTURN_MOVE_LEASE_MS",
    kind: "int",
    default: "10000",
    help: "with --peer-key: how long a sidecar that took a session has to confirm it holds it before another sidecar may take it instead (one that failed mid-move); until then the session's state stays here",
  },
  peerCa: { flag: "peer-ca", env: "MICROTURN_PEER_CA", kind: "string", default: "", help: "PEM CA bundle file the other sidecars' certificates chain to (grpcs:// peers; default: the system's CAs)" },
  maxSessions: { flag: "max-sessions", env: "MICROTURN_MAX_SESSIONS", kind: "int", default: "4096", help: "live sessions per sidecar" },
  maxOutputTokensPerTurn: {
    flag: "max-output-tokens",
    env: "MICROTURN_MAX_OUTPUT_TOKENS",
    kind: "int",
    default: "6",
    help: "output tokens per 200 ms micro-turn for a session that asks for no budget of its own",
  },
  maxOutputTokensCeiling: {
    flag: "max-output-tokens-ceiling",
    env: "MICROTURN_MAX_OUTPUT_TOKENS_CEILING",
    kind: "int",
    default: "0",
    help: "the most output tokens per micro-turn a session may ask for; a larger ask is cut to it (0: --max-output-tokens)",
  },
  sessionTokens: {
    flag: "session-tokens",
    env: "MICROTURN_SESSION_TOKENS",
    kind: "int",
    default: "0",
    help: "KV capacity per session, tokens (0: the engine's default); a full session rolls over",
  },
  rewindHorizonMs: {
    flag: "rewind-horizon-ms",
    env: "MICROTURN_REWIND_HORIZON_MS",
    kind: "int",
    default: "10000",
    help: "how far back (input time) a barge-in can cut; each session keeps that much input, media included",
  },
  maxQueuedChunks: { flag: "max-queued-chunks", env: "MICROTURN_MAX_QUEUED_CHUNKS", kind: "int", default: "50", help: "input chunks a session may queue" },
  resumeGraceMs: { flag: "resume-grace-ms", env: "MICROTURN_RESUME_GRACE_MS", kind: "int", default: "30000", help: "how long a dropped session waits for resume" },
  backgroundMaxConcurrent: {
    flag: "background-max-concurrent",
    env: "MICROTURN_BACKGROUND_MAX_CONCURRENT",
    kind: "int",
    default: "2",
    help: "background tasks running at once per session",
  },
  backgroundTimeoutMs: {
    flag: "background-timeout-ms",
    env: "MICROTURN_BACKGROUND_TIMEOUT_MS",
    kind: "int",
    default: "120000",
    help: "default background task deadline",
  },
  toolTimeoutMs: { flag: "tool-timeout-ms", env: "MICROTURN_TOOL_TIMEOUT_MS", kind: "int", default: "10000", help: "default tool call deadline" },
  recordDir: { flag: "record-dir", env: "MICROTURN_RECORD_DIR", kind: "string", default: "", help: "folder for session recordings (empty: off)" },
  drainMs: { flag: "drain-ms", env: "MICROTURN_DRAIN_MS", kind: "int", default: "5000", help: "grace given to live sessions on SIGTERM" },
  spinWindowMs: {
    flag: "spin-window-ms",
    env: "MICROTURN_SPIN_WINDOW_MS",
    kind: "int",
    default: "0",
    help: "spin awake from this long before a session's next chunk is due until it lands (or this long after): CPU for a shorter chunk path (0: off)",
  },
  spinMaxSessions: {
    flag: "spin-max-sessions",
    env: "MICROTURN_SPIN_MAX_SESSIONS",
    kind: "int",
    default: "64",
    help: "live sessions above which the sidecar no longer spins for chunks (their load keeps it awake)",
  },
  logLevel: {
    flag: "log-level",
    env: "MICROTURN_LOG_LEVEL",
    kind: "enum",
    values: ["debug", "info", "warn", "error"],
    default: "info",
    help: "structured log level",
  },
};

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

function parseValue(key: string, setting: Setting, raw: string, source: string): string | number {
  if (setting.kind === "int") {
    if (!/^-?\d+$/.test(raw.trim())) throw new ConfigError(`${source}: expected an integer, got "${raw}"`);
    return Number(raw);
  }
  if (setting.kind === "enum" && raw !== "" && !setting.values!.includes(raw)) {
    throw new ConfigError(`${source}: expected one of ${setting.values!.join(", ")}, got "${raw}" (${key})`);
  }
  return raw;
}

/** Parses flags (`args`) over environment (`env`) over defaults, and validates the whole. */
export function loadConfig(args: string[] = [], env: NodeJS.ProcessEnv = process.env): SidecarConfig {
  const options = Object.fromEntries(Object.values(SETTINGS).map((s) => [s.flag, { type: "string" as const }]));
  let parsed: Record<string, string | undefined>;
  try {
    parsed = parseArgs({ args: joinNegativeValues(args), options, strict: true, allowPositionals: false }).values as Record<string, string | undefined>;
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  const config: Record<string, string | number> = {};
  for (const [key, setting] of Object.entries(SETTINGS)) {
    const fromFlag = parsed[setting.flag];
    const fromEnv = env[setting.env];
    const [raw, source] =
      fromFlag !== undefined ? [fromFlag, `--${setting.flag}`] : fromEnv !== undefined && fromEnv !== "" ? [fromEnv, setting.env] : [setting.default, "default"];
    config[key] = parseValue(key, setting, raw, source);
  }
  const result = config as unknown as SidecarConfig;
  // [::1] as URLs write it; the servers take the bare address.
  result.host = result.host.replace(/^\[(.*)\]$/, "$1");
  if (result.background === ("" as BackgroundKind)) result.background = result.backgroundUrl ? "openai" : "embedded";
  validate(result);
  return result;
}

function validate(c: SidecarConfig): void {
  const port = (name: string, value: number, allowOff: boolean) => {
    if (!(value >= (allowOff ? -1 : 0) && value <= 65535)) throw new ConfigError(`${name} must be 0..65535${allowOff ? " or -1" : ""}, got ${value}`);
  };
  port("--port / MICROTURN_PORT", c.port, false);
  port("--metrics-port / MICROTURN_METRICS_PORT", c.httpPort, true);
  // Both servers listen on --host: one port for both fails at listen with EADDRINUSE. 0 (any free port) twice is fine.
  if (c.port > 0 && c.port === c.httpPort) {
    throw new ConfigError(`--port / MICROTURN_PORT and --metrics-port / MICROTURN_METRICS_PORT are both ${c.port}: the gRPC and HTTP servers need a port each`);
  }
  if (Boolean(c.tlsCert) !== Boolean(c.tlsKey)) {
    throw new ConfigError("--tls-cert / MICROTURN_TLS_CERT and --tls-key / MICROTURN_TLS_KEY go together: give both for TLS, neither for plaintext");
  }
  if (c.tlsClientCa && !c.tlsCert) {
    throw new ConfigError("--tls-client-ca / MICROTURN_TLS_CLIENT_CA asks clients for certificates over TLS: give --tls-cert and --tls-key too");
  }
  if (c.peerKey || c.advertiseUrl) {
    if (!c.peerKey || !c.advertiseUrl) {
      throw new ConfigError("--peer-key / MICROTURN_PEER_KEY and --advertise-url / MICROTURN_ADVERTISE_URL go together: sessions move between sidecars that share the key and know each other's address");
    }
    if (c.peerKey.length < MIN_PEER_KEY_CHARS) throw new ConfigError(`--peer-key / MICROTURN_PEER_KEY must be at least ${MIN_PEER_KEY_CHARS} characters (e.g. openssl rand -base64 32), got ${c.peerKey.length}`);
    const peer = parsePeerUrl(c.advertiseUrl);
    if (!peer) throw new ConfigError(`--advertise-url / MICROTURN_ADVERTISE_URL must be grpc://host:port or grpcs://host:port, got "${c.advertiseUrl}"`);
    if (peer.tls !== Boolean(c.tlsCert)) {
      throw new ConfigError(
        `--advertise-url ${c.advertiseUrl}: this sidecar serves gRPC ${c.tlsCert ? "over TLS: advertise grpcs://" : "in plaintext: advertise grpc://"} so its peers can reach it`,
      );
    }
  }
  // A session whose taker failed mid-move is handed again only after the lease: within the grace period, or never.
  if (c.peerKey && c.moveLeaseMs >= c.resumeGraceMs) {
    throw new ConfigError(
      `${named("moveLeaseMs")} (${c.moveLeaseMs}) must be shorter than ${named("resumeGraceMs")} (${c.resumeGraceMs}): a session whose new sidecar failed mid-move can move again only after the lease, and its client resumes only within the grace period`,
    );
  }
  if (c.peerKeysAccepted) {
    if (!c.peerKey) throw new ConfigError("--peer-keys-accepted / MICROTURN_PEER_KEYS_ACCEPTED goes with --peer-key: give the key in use too");
    const short = c.peerKeysAccepted.split(",").findIndex((k) => k.length < MIN_PEER_KEY_CHARS);
    if (short >= 0) throw new ConfigError(`--peer-keys-accepted / MICROTURN_PEER_KEYS_ACCEPTED: key ${short + 1} is shorter than ${MIN_PEER_KEY_CHARS} characters (keys are comma-separated)`);
  }
  parseAllowedOrigins(c.allowedOrigins);
  if (c.peerCa && !c.peerKey) throw new ConfigError("--peer-ca / MICROTURN_PEER_CA is for reaching peers: give --peer-key and --advertise-url too");
  if (c.engine.startsWith("sglang-") && !c.engineUrl) {
    throw new ConfigError(`--engine ${c.engine} needs --engine-url / MICROTURN_ENGINE_URL (where SGLang listens)`);
  }
  // Every network client needs an address; none and embedded need none.
  if (c.background !== "none" && c.background !== "embedded" && !c.backgroundUrl) {
    throw new ConfigError(`--background ${c.background} needs --background-url / MICROTURN_BACKGROUND_URL`);
  }
  // A tool or task deadline of 0 would time every call out at once: deadlines are at least 1 ms.
  const positive: (keyof SidecarConfig)[] = ["maxSessions", "maxOutputTokensPerTurn", "maxQueuedChunks", "backgroundMaxConcurrent", "toolTimeoutMs", "backgroundTimeoutMs", "moveLeaseMs"];
  for (const key of positive) {
    if ((c[key] as number) < 1) throw new ConfigError(`${named(key)} must be at least 1, got ${c[key]}`);
  }
  // The budget goes out as a uint32 (SessionStarted.max_output_tokens_per_turn, the engines' max_output_tokens).
  for (const key of ["maxOutputTokensPerTurn", "maxOutputTokensCeiling"] as const) {
    if (c[key] > 0xffffffff) throw new ConfigError(`${named(key)} must be at most 4294967295, got ${c[key]}`);
  }
  if (c.maxOutputTokensCeiling < 0) throw new ConfigError(`${named("maxOutputTokensCeiling")} must not be negative, got ${c.maxOutputTokensCeiling}`);
  if (c.maxOutputTokensCeiling > 0 && c.maxOutputTokensCeiling < c.maxOutputTokensPerTurn) {
    throw new ConfigError(
      `${named("maxOutputTokensCeiling")} (${c.maxOutputTokensCeiling}) is below ${named("maxOutputTokensPerTurn")} (${c.maxOutputTokensPerTurn}), the default a session gets: raise the ceiling or lower the default`,
    );
  }
  for (const key of ["resumeGraceMs", "drainMs", "sessionTokens", "rewindHorizonMs", "spinWindowMs", "spinMaxSessions", "tlsReloadMs"] as const) {
    if (c[key] < 0) throw new ConfigError(`${named(key)} must not be negative, got ${c[key]}`);
  }
  // A window of half a chunk or more would spin without pause.
  if (c.spinWindowMs > 50) throw new ConfigError(`${named("spinWindowMs")} must be at most 50 (a window spans twice it, out of each 200 ms chunk), got ${c.spinWindowMs}`);
  // Waits: Node fires a setTimeout of 2^31 ms or more after 1 ms, and the wire
  // carries them as uint32 (SessionStarted.resume_grace_ms, GoAway.deadline_ms).
  for (const key of ["resumeGraceMs", "backgroundTimeoutMs", "toolTimeoutMs", "drainMs", "tlsReloadMs", "moveLeaseMs"] as const) {
    if (c[key] > MAX_TIMER_MS) throw new ConfigError(`${named(key)} must be at most ${MAX_TIMER_MS} (about 24.8 days, the longest a timer waits), got ${c[key]}`);
  }
}

/**
 * The entries of --allowed-origins as browsers write an Origin header (lower case, no default
 * port), or "*"; a ConfigError for an entry that is neither. An origin has no path: a page's
 * Origin never carries one, so an entry with one would never match.
 */
export function parseAllowedOrigins(value: string): string[] {
  const origins: string[] = [];
  for (const entry of value.split(",").map((e) => e.trim()).filter((e) => e !== "")) {
    if (entry === "*") {
      origins.push(entry);
      continue;
    }
    let url: URL | undefined;
    try {
      url = new URL(entry);
    } catch {
      url = undefined;
    }
    // No wildcard hosts: a page's Origin names one host, so an entry must too.
    if (!url || (url.protocol !== "http:" && url.protocol !== "https:") || url.username || url.password || url.hostname.includes("*")) {
      throw new ConfigError(`${named("allowedOrigins")}: "${entry}" is not an origin: write http(s)://host[:port], or * for any (comma-separated)`);
    }
    if (!/^[a-z]+:\/\/[^/?#]+$/i.test(entry)) {
      throw new ConfigError(`${named("allowedOrigins")}: "${entry}" has a path or query; an origin is scheme://host[:port] (${url.origin})`);
    }
    origins.push(url.origin);
  }
  return origins;
}

/** How messages name a setting: its flag and its variable, whichever the value came from. */
function named(key: keyof typeof SETTINGS): string {
  return `--${SETTINGS[key].flag} / ${SETTINGS[key].env}`;
}

/**
 * `--flag -1` as `--flag=-1`: parseArgs takes a value that starts with a dash
 * for an option and refuses it, and -1 is a documented value (--metrics-port).
 */
function joinNegativeValues(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const next = args[i + 1];
    if (arg.startsWith("--") && !arg.includes("=") && next !== undefined && /^-\d+$/.test(next)) {
      out.push(`${arg}=${next}`);
      i++;
    } else {
      out.push(arg);
    }
  }
  return out;
}

/** The text of `microturn serve --help`. */
export function configHelp(): string {
  const rows = Object.values(SETTINGS).map((s) => {
    const values = s.values ? ` (${s.values.join("|")})` : "";
    const def = s.default === "" ? "" : ` [default: ${s.default}]`;
    return `  --${s.flag.padEnd(26)} ${s.help}${values}${def}\n  ${"".padEnd(28)} env ${s.env}`;
  });
  return rows.join("\n");
}
