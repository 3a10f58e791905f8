#!/usr/bin/env node
// The `microturn` command: serve (the sidecar), demo (a live scripted session
// on the embedded engine), replay (a recorded session against any engine).
import { ConfigError, configHelp, loadConfig } from "./config.js";

const USAGE = `microturn — serving stack for interaction models

Usage:
  microturn serve [flags]          run the sidecar (gRPC Interaction service)
  microturn demo [flags]           live ~20 s scripted session on the embedded engine
  microturn replay FILE [flags]    replay a recorded session (JSONL) against the configured engine;
                                   exits 1, saying why, when it does not go through cleanly.
                                   --context recorded (default): the model gets the recorded
                                   background and tool results at the recorded micro-turns;
                                   --context live: the replay's own tools and background answer
  microturn --help | --version

Flags (each also an environment variable):
${configHelp()}
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === "--help" || command === "-h" || command === "help") {
    process.stdout.write(USAGE);
    return command === undefined ? 2 : 0;
  }
  if (command === "--version") {
    const { PROTOCOL_VERSION } = await import("@microturn/protocol");
    process.stdout.write(`microturn sidecar 0.1.0 (protocol ${PROTOCOL_VERSION})\n`);
    return 0;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    process.stdout.write(USAGE);
    return 0;
  }
  try {
    switch (command) {
      case "serve": {
        const { serve } = await import("./main.js");
        return await serve(loadConfig(rest));
      }
      case "demo": {
        const { runDemo } = await import("./demo/demo.js");
        const { tmpdir } = await import("node:os");
        const { join } = await import("node:path");
        // The demo records its session (to replay it: microturn replay FILE), in the temp folder unless told otherwise.
        const env = {
          ...process.env,
          MICROTURN_PORT: process.env.MICROTURN_PORT ?? "0",
          MICROTURN_METRICS_PORT: process.env.MICROTURN_METRICS_PORT ?? "-1",
          MICROTURN_RECORD_DIR: process.env.MICROTURN_RECORD_DIR ?? join(tmpdir(), "microturn-demo"),
        };
        return await runDemo(loadConfig(rest, env));
      }
      case "replay": {
        const [file, ...args] = rest;
        if (!file || file.startsWith("--")) throw new ConfigError("replay needs the recording file first: microturn replay FILE [--context recorded|live] [flags]");
        const { mode, flags } = replayContextFlag(args);
        const { replayFile, RecordingError } = await import("./replay.js");
        const config = loadConfig(flags, { ...process.env, MICROTURN_PORT: "0", MICROTURN_METRICS_PORT: "-1" });
        try {
          return await replayFile(file, config, mode);
        } catch (err) {
          // A bad or unreadable recording is the user's to fix, not a crash: one line, like a bad setting.
          if (err instanceof RecordingError) process.stderr.write(`microturn: ${file}: ${err.message}\n`);
          else if (isFileSystemError(err)) process.stderr.write(`microturn: cannot read the recording: ${err.message}\n`);
          else throw err;
          return 1;
        }
      }
      default:
        process.stderr.write(`microturn: unknown command "${command}"\n\n${USAGE}`);
        return 2;
    }
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`microturn: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
}

/** Takes replay's own `--context recorded|live` (or `--context=…`) out of the serve flags. */
function replayContextFlag(args: string[]): { mode: "recorded" | "live"; flags: string[] } {
  const flags: string[] = [];
  let mode: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--context") {
      if (i + 1 >= args.length) throw new ConfigError("--context needs a value: recorded or live");
      mode = args[++i];
    } else if (arg.startsWith("--context=")) mode = arg.slice("--context=".length);
    else flags.push(arg);
  }
  if (mode !== undefined && mode !== "recorded" && mode !== "live") throw new ConfigError(`--context must be recorded or live, got "${mode}"`);
  return { mode: mode ?? "recorded", flags };
}

/** An error of a file-system call (ENOENT, EACCES, EISDIR…): its message names the call and the path. */
function isFileSystemError(err: unknown): err is NodeJS.ErrnoException {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).code === "string" && typeof (err as NodeJS.ErrnoException).syscall === "string";
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    // A sidecar that cannot start says why in one line (its cause's stack with MICROTURN_LOG_LEVEL=debug); anything else is a bug: its stack.
    const startup = err instanceof Error && err.name === "StartupError" ? (err as Error & { debug: boolean }) : undefined;
    const cause = startup?.debug ? startup.cause : undefined;
    if (startup) process.stderr.write(`microturn: cannot start: ${startup.message}\n${cause instanceof Error ? `${cause.stack}\n` : ""}`);
    else process.stderr.write(`microturn: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    // Exit now: whatever the failed command had started must not keep the process half running.
    process.exit(1);
  },
);
