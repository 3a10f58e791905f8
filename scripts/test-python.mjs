#!/usr/bin/env node
// Runs the sglang-patch Python suite: creates .venv when missing, installs what the
// tests need, then runs pytest. Exits with pytest's status (0 pass, 1 fail).
//
// torch: PyPI's Linux wheel is a CUDA build with GBs of nvidia-* wheels and does not
// import without them. Debian's python3-torch (1.13, CPU) is ~150 MB of .debs, so the
// venv is built on /usr/bin/python3 with --system-site-packages when that works.
// MICROTURN_TORCH=pip forces the PyPI fallback (requirements-torch-pip.txt).
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const patchDir = join(root, "sglang-patch");
const venv = join(root, ".venv");
const venvPython = join(venv, "bin/python");
const stampPath = join(venv, ".microturn-stamp");
const started = Date.now();

const log = (msg) => console.log(`test:py: ${msg}`);
const run = (cmd, args, opts = {}) => execFileSync(cmd, args, { stdio: "inherit", cwd: root, ...opts });
const succeeds = (cmd, args) => spawnSync(cmd, args, { stdio: "ignore" }).status === 0;

function debianTorchPython() {
  const sys = "/usr/bin/python3";
  if (!existsSync(sys)) return null;
  const importsTorch = () => succeeds(sys, ["-c", "import torch, numpy, venv, ensurepip"]);
  if (importsTorch()) return sys;
  const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
  if (!isRoot || !existsSync("/usr/bin/apt-get")) return null;
  log("installing Debian python3-torch (CPU) with apt-get");
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  try {
    run("apt-get", ["update", "-qq"], { env });
    run("apt-get", ["install", "-y", "-qq", "--no-install-recommends", "python3-torch", "python3-venv"], { env });
  } catch {
    log("apt-get failed; falling back to torch from PyPI");
    return null;
  }
  return importsTorch() ? sys : null;
}

function stampFor(mode) {
  const hash = createHash("sha256");
  hash.update(mode);
  for (const f of ["requirements-test.txt", "requirements-torch-pip.txt", "SGLANG_VERSION", "pyproject.toml"]) {
    hash.update(readFileSync(join(patchDir, f)));
  }
  return hash.digest("hex");
}

function ensureVenv() {
  const forcePip = process.env.MICROTURN_TORCH === "pip";
  const base = forcePip ? null : debianTorchPython();
  const mode = base ? "debian-torch" : "pip-torch";
  const stamp = stampFor(mode);
  if (existsSync(venvPython) && existsSync(stampPath) && readFileSync(stampPath, "utf8") === stamp) return;

  if (!existsSync(venvPython)) {
    if (base) {
      log(`creating .venv on ${base} with Debian's torch`);
      run(base, ["-m", "venv", "--system-site-packages", venv]);
    } else {
      log("creating .venv on python3 (torch from PyPI: large download)");
      run("python3", ["-m", "venv", venv]);
    }
  }
  const pip = [venvPython, "-m", "pip", "install", "--disable-pip-version-check", "-q"];
  if (mode === "pip-torch") run(pip[0], [...pip.slice(1), "-r", join(patchDir, "requirements-torch-pip.txt")]);
  run(pip[0], [...pip.slice(1), "-r", join(patchDir, "requirements-test.txt")]);
  // SGLang's source only: hook-target tests parse it; its runtime deps are not needed.
  const sglangVersion = readFileSync(join(patchDir, "SGLANG_VERSION"), "utf8").trim();
  run(pip[0], [...pip.slice(1), "--no-deps", `sglang==${sglangVersion}`]);
  // Editable, so `.venv/bin/python -m microturn_sglang.reference_server` works from any cwd.
  run(pip[0], [...pip.slice(1), "--no-deps", "-e", patchDir]);
  writeFileSync(stampPath, stamp);
  log(`environment ready in ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

try {
  ensureVenv();
} catch (err) {
  console.error(`test:py: could not prepare .venv: ${err.message}`);
  process.exit(1);
}

// --setup-only: prepare .venv (CI does this before `npm run generate`, which needs grpcio-tools).
if (process.argv.includes("--setup-only")) process.exit(0);

const extra = process.argv.slice(2);
const result = spawnSync(venvPython, ["-m", "pytest", "-q", "-p", "no:cacheprovider", ...extra], {
  cwd: patchDir,
  stdio: "inherit",
});
process.exit(result.status === 0 ? 0 : 1);
