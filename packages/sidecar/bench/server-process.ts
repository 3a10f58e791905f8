// The servers bench:sidecar and bench:wire start in processes of their own:
// the sidecar on the echo engine and the floor server (grpc-floor-server.ts).
// Each is ready when its stdout says `grpc=<host:port>`.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** `microturn serve` on the echo engine, any free port, no HTTP server, and `flags` after. */
export function sidecarArgv(flags: string[] = []): string[] {
  return [fileURLToPath(new URL("../dist/cli.js", import.meta.url)), "serve", "--engine", "echo", "--port", "0", "--metrics-port=-1", ...flags];
}

/**
 * The floor server. A bundled copy of the bench (scripts/bundle-sidecar-bench.mjs)
 * carries it as plain JavaScript beside it; from the source tree it runs through tsx.
 */
export function floorArgv(): string[] {
  const bundled = fileURLToPath(new URL("./grpc-floor-server.mjs", import.meta.url));
  if (existsSync(bundled)) return [bundled];
  return ["--import", "tsx", fileURLToPath(new URL("./grpc-floor-server.ts", import.meta.url))];
}

export interface ServerProcessOptions {
  /** A `taskset` core list the process is pinned to. */
  cpus?: string;
  /** Every whole line the process writes to stdout (its --trace-gc lines, say). */
  onLines?: (lines: string) => void;
}

/** Runs `node <argv>` and resolves with the address it serves on once it says so. */
export async function startServerProcess(argv: string[], options: ServerProcessOptions = {}): Promise<{ child: ChildProcess; address: string }> {
  const [command, args] = options.cpus ? ["taskset", ["-c", options.cpus, process.execPath, ...argv]] : [process.execPath, argv];
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "inherit"] });
  const address = await new Promise<string>((resolve, reject) => {
    let buffered = "";
    let ready = false;
    child.stdout!.on("data", (d: Buffer) => {
      buffered += d.toString();
      const lastLine = buffered.lastIndexOf("\n") + 1;
      const lines = buffered.slice(0, lastLine);
      buffered = buffered.slice(lastLine);
      options.onLines?.(lines);
      const match = ready ? null : /grpc=(\S+)/.exec(lines);
      if (match) {
        ready = true;
        resolve(match[1]!);
      }
    });
    child.once("exit", (code) => reject(new Error(`${argv.join(" ")}: exited with ${code} before it was ready`)));
  });
  return { child, address };
}

/** CPU time (user + system) a process has used, ms; undefined where /proc is missing. */
export function cpuMs(pid: number | undefined): number | undefined {
  if (pid === undefined || !existsSync(`/proc/${pid}/stat`)) return undefined;
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  // utime and stime are fields 14 and 15 of stat(5), in clock ticks (100 a second on Linux).
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}
