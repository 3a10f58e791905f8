#!/usr/bin/env node
// Regenerates everything derived from proto/: TypeScript (packages/protocol/src/gen; SGLang's
// vendored scheduler proto -> packages/sidecar/src/gen/sglang),
// Python (sglang-patch/microturn_sglang/gen, when grpcio-tools is available) and
// docs/protocol.md. CI runs it and fails on any diff.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { writeProtocolDoc } from "./protocol-doc.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const run = (cmd, args) => execFileSync(cmd, args, { cwd: root, stdio: "inherit" });

run(join(root, "node_modules/.bin/buf"), ["generate", "--clean"]);
console.log("generate: TypeScript -> packages/protocol/src/gen");

// SGLang's native gRPC service, vendored upstream proto: its own module and template.
run(join(root, "node_modules/.bin/buf"), ["generate", "packages/sidecar/proto/sglang", "--template", "buf.gen.sglang.yaml", "--clean"]);
console.log("generate: TypeScript -> packages/sidecar/src/gen/sglang");

writeProtocolDoc(root);
console.log("generate: docs/protocol.md");

const pyGen = join(root, "sglang-patch/scripts/generate.py");
if (existsSync(pyGen)) {
  const venvPython = join(root, ".venv/bin/python");
  const python = process.env.MICROTURN_PYTHON ?? (existsSync(venvPython) ? venvPython : "python3");
  try {
    execFileSync(python, ["-c", "import grpc_tools"], { stdio: "ignore" });
  } catch {
    console.error(`generate: ${python} lacks grpcio-tools; run 'npm run test:py' once to create .venv, then generate again`);
    process.exit(1);
  }
  run(python, [pyGen]);
  console.log("generate: Python -> sglang-patch/microturn_sglang/gen");
}
