#!/usr/bin/env node
// `npm run microturn -- <command> [flags]`: the `microturn` command in a checkout
// of this repository, where npx finds no `microturn` (npm links a workspace's
// bin only when its file exists at install time, and dist/ is built later).
// Builds the packages first when they have not been built yet.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const cli = join(root, "packages/sidecar/dist/cli.js");
if (!existsSync(cli)) {
  const built = spawnSync(process.execPath, [join(root, "scripts/build-quiet.mjs")], { stdio: "inherit" });
  if (built.status !== 0) process.exit(built.status ?? 1);
}
const run = spawnSync(process.execPath, [cli, ...process.argv.slice(2)], { stdio: "inherit" });
process.exit(run.status ?? 1);
