#!/usr/bin/env node
// Builds every workspace for `npm start`, printing one line instead of the
// build log; the log is shown only when the build fails.
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const started = Date.now();
process.stdout.write("building packages (npm run build)… ");
const result = spawnSync("npm", ["run", "build", "--silent"], { cwd: root, encoding: "utf8", shell: process.platform === "win32" });
if (result.status !== 0) {
  process.stdout.write("failed\n");
  process.stdout.write(result.stdout ?? "");
  process.stderr.write(result.stderr ?? "");
  process.exit(result.status ?? 1);
}
process.stdout.write(`done in ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
