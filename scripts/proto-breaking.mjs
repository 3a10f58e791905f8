#!/usr/bin/env node
// Fails when proto/ breaks wire or JSON compatibility with an earlier commit.
// Against: $MICROTURN_BREAKING_AGAINST (a git ref), else HEAD when proto/ has
// uncommitted changes (a contributor's edit), else HEAD~1 (CI on main).
import { execFileSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const git = (...args) => execFileSync("git", args, { cwd: root, encoding: "utf8" }).trim();

function pickAgainst() {
  if (process.env.MICROTURN_BREAKING_AGAINST) return process.env.MICROTURN_BREAKING_AGAINST;
  if (git("status", "--porcelain", "--", "proto", "buf.yaml") !== "") return "HEAD";
  try {
    git("rev-parse", "--verify", "--quiet", "HEAD~1^{commit}");
    return "HEAD~1";
  } catch {
    return null;
  }
}

const against = pickAgainst();
if (against === null) {
  console.log("proto-breaking: no earlier commit to compare with; skipped");
  process.exit(0);
}
let hadProto = true;
try {
  git("cat-file", "-e", `${against}:proto/microturn/v1`);
} catch {
  hadProto = false;
}
if (!hadProto) {
  console.log(`proto-breaking: ${against} has no proto/microturn/v1; nothing to break`);
  process.exit(0);
}
try {
  execFileSync(join(root, "node_modules/.bin/buf"), ["breaking", "--against", `.git#ref=${git("rev-parse", against)}`], {
    cwd: root,
    stdio: "inherit",
  });
} catch {
  console.error(`proto-breaking: proto/ breaks compatibility with ${against}. Add fields instead of changing them, keep`);
  console.error("numbers reserved when removing, or start microturn.v2 (docs/extending-the-schema.md).");
  process.exit(1);
}
console.log(`proto-breaking: compatible with ${against}`);
