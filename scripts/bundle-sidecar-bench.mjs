// Bundles `npm run bench:sidecar` into plain JavaScript files that run with a
// bare `node` and no node_modules, for a measuring machine that has neither the
// workspace nor a registry (a lent many-core box, say):
//
//   npm run build --silent && node scripts/bundle-sidecar-bench.mjs <out-dir>
//   # there:
//   node <out-dir>/bench/sidecar.bench.mjs [--levels=…]   (SIDECAR_CPUS=2,3 pins the sidecar)
//
// Layout: <out>/dist/cli.js (the sidecar CLI; `serve --engine echo` needs no
// native module, so node-llama-cpp is replaced by a module that refuses to load
// a model: the bundle serves the echo engine only), <out>/bench/sidecar.bench.mjs and
// <out>/bench/grpc-floor-server.mjs, which the bench finds beside itself, and
// <out>/bench/wire-idle.bench.mjs (`npm run bench:wire`).
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const out = resolve(process.argv[2] ?? join(root, ".bench-bundle"));
const sidecar = join(root, "packages/sidecar");

// CommonJS dependencies (grpc-js, protobufjs) call require(): give the ESM bundle one.
const banner = {
  js: "import { createRequire as __microturnCreateRequire } from 'node:module'; const require = __microturnCreateRequire(import.meta.url);",
};
const noNativeEngine = {
  name: "no-native-engine",
  setup(b) {
    b.onResolve({ filter: /^node-llama-cpp$/ }, () => ({ path: "node-llama-cpp", namespace: "no-native-engine" }));
    b.onLoad({ filter: /.*/, namespace: "no-native-engine" }, () => ({
      contents: `const refuse = () => { throw new Error("this bundle serves the echo engine only: node-llama-cpp is not in it"); };
export const getLlama = refuse;
export const LlamaLogLevel = {};
export class LlamaGrammarEvaluationState { constructor() { refuse(); } }`,
      loader: "js",
    }));
  },
};
const common = {
  bundle: true,
  platform: "node",
  target: "node20",
  format: "esm",
  banner,
  plugins: [noNativeEngine],
  logLevel: "warning",
};

await build({ ...common, entryPoints: [join(sidecar, "dist/cli.js")], outfile: join(out, "dist/cli.js") });
await build({ ...common, entryPoints: [join(sidecar, "bench/sidecar.bench.ts")], outfile: join(out, "bench/sidecar.bench.mjs") });
await build({ ...common, entryPoints: [join(sidecar, "bench/grpc-floor-server.ts")], outfile: join(out, "bench/grpc-floor-server.mjs") });
await build({ ...common, entryPoints: [join(sidecar, "bench/wire-idle.bench.ts")], outfile: join(out, "bench/wire-idle.bench.mjs") });
mkdirSync(out, { recursive: true });
writeFileSync(join(out, "package.json"), JSON.stringify({ type: "module", private: true }) + "\n");
console.log(`bundle-sidecar-bench: ${out}`);
