// A TypeScript entry point run in a Node process of its own (through tsx), its
// output gathered as it comes: the CLI and serve-process tests.
import { spawn, type ChildProcess } from "node:child_process";

export interface TsxProcess {
  child: ChildProcess;
  /** Everything written so far. */
  readonly stdout: string;
  readonly stderr: string;
  /** The exit code once the process ends. */
  exited: Promise<number | null>;
}

export function spawnTsx(script: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): TsxProcess {
  const child = spawn(process.execPath, ["--import", "tsx", script, ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
  const out = { stdout: "", stderr: "" };
  child.stdout!.on("data", (d: Buffer) => (out.stdout += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out.stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
  return {
    child,
    get stdout() {
      return out.stdout;
    },
    get stderr() {
      return out.stderr;
    },
    exited,
  };
}
