#!/usr/bin/env node
// Runs the sglang-patch Python suite: creates .venv when missing, installs what the
// tests need, then runs pytest. Exits with pytest's status (0 pass, 1 fail).
//
// Two environments (MICROTURN_TORCH):
// - "sglang" (default): SGLang's own torch 2.14.1 from PyPI and the packages its
//   modules import (requirements-sglang-runtime.txt), so the tests marked
//   requires_sglang run against SGLang 0.5.23's real classes on CPU. PyPI's Linux
//   torch is a CUDA build: about 5 GB, installed in 4–6 min here.
// - "debian": Debian's python3-torch 1.13 (CPU, ~150 MB of .debs) under a venv made
//   with --system-site-packages; SGLang's runtime does not import on torch 1.13, so
//   those tests skip. For a quick, small setup.
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
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

const MODES = {
  sglang: ["requirements-sglang-runtime.txt"],
  debian: ["requirements-torch-debian.txt"],
};

function debianTorchPython() {
  const sys = "/usr/bin/python3";
  if (!existsSync(sys)) throw new Error("MICROTURN_TORCH=debian needs /usr/bin/python3");
  const importsTorch = () => succeeds(sys, ["-c", "import torch, numpy, venv, ensurepip"]);
  if (importsTorch()) return sys;
  const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
  if (!isRoot || !existsSync("/usr/bin/apt-get")) throw new Error("MICROTURN_TORCH=debian needs python3-torch (apt-get as root)");
  log("installing Debian python3-torch (CPU) with apt-get");
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  run("apt-get", ["update", "-qq"], { env });
  run("apt-get", ["install", "-y", "-qq", "--no-install-recommends", "python3-torch", "python3-venv"], { env });
  if (!importsTorch()) throw new Error("python3-torch installed but torch does not import under /usr/bin/python3");
  return sys;
}

function stampFor(mode) {
  const hash = createHash("sha256");
  hash.update(mode);
  for (const f of ["requirements-test.txt", ...MODES[mode], "SGLANG_VERSION", "pyproject.toml"]) {
    hash.update(readFileSync(join(patchDir, f)));
  }
  return `${mode}:${hash.digest("hex")}`;
}

function ensureVenv() {
  const mode = process.env.MICROTURN_TORCH || "sglang";
  if (!MODES[mode]) throw new Error(`MICROTURN_TORCH must be one of ${Object.keys(MODES).join(", ")}, not "${mode}"`);
  const stamp = stampFor(mode);
  const current = existsSync(stampPath) ? readFileSync(stampPath, "utf8") : "";
  if (existsSync(venvPython) && current === stamp) return;
  // A venv of the other mode has another base interpreter and site packages: start over.
  if (existsSync(venv) && !current.startsWith(`${mode}:`)) {
    log(`replacing .venv (${current.split(":")[0] || "unknown"} environment) with the ${mode} one`);
    rmSync(venv, { recursive: true, force: true });
  }
  if (!existsSync(venvPython)) {
    if (mode === "debian") {
      const base = debianTorchPython();
      log(`creating .venv on ${base} with Debian's torch`);
      run(base, ["-m", "venv", "--system-site-packages", venv]);
    } else {
      log("creating .venv with SGLang's torch from PyPI (about 5 GB, a few minutes)");
      run("python3", ["-m", "venv", venv]);
    }
  }
  const pip = [venvPython, "-m", "pip", "install", "--disable-pip-version-check", "-q"];
  for (const f of [...MODES[mode], "requirements-test.txt"]) run(pip[0], [...pip.slice(1), "-r", join(patchDir, f)]);
  // SGLang's source without its GPU dependencies: the hook-target tests parse it and,
  // in the sglang environment, the requires_sglang tests import it.
  const sglangVersion = readFileSync(join(patchDir, "SGLANG_VERSION"), "utf8").trim();
  run(pip[0], [...pip.slice(1), "--no-deps", `sglang==${sglangVersion}`]);
  // Editable, so `.venv/bin/python -m microturn_sglang.reference_server` works from any cwd.
  run(pip[0], [...pip.slice(1), "--no-deps", "-e", patchDir]);
  writeFileSync(stampPath, stamp);
  log(`${mode} environment ready in ${((Date.now() - started) / 1000).toFixed(0)} s`);
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
