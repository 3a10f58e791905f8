import { fileURLToPath } from "node:url";
import { defineConfig } from "tsup";

const common = { format: ["esm", "cjs"] as ("esm" | "cjs")[], dts: { compilerOptions: { composite: false } }, sourcemap: true, target: "node20" as const, splitting: false };

export default defineConfig([
  { ...common, entry: ["src/index.ts", "src/testing.ts"], clean: true },
  {
    // Browser entry: the protocol codec is bundled in with grpc-js replaced by a
    // stub and Buffer by a Uint8Array shim, so the bundle loads without Node.
    ...common,
    entry: ["src/browser.ts"],
    target: "es2022",
    platform: "browser",
    noExternal: ["@microturn/protocol", "@microturn/media", "@grpc/grpc-js"],
    esbuildPlugins: [
      {
        name: "grpc-browser-stub",
        setup(build) {
          build.onResolve({ filter: /^@grpc\/grpc-js$/ }, () => ({
            path: fileURLToPath(new URL("./src/internal/grpc-browser-stub.ts", import.meta.url)),
          }));
        },
      },
    ],
    esbuildOptions(options) {
      options.inject = [fileURLToPath(new URL("./src/internal/buffer-shim.ts", import.meta.url))];
    },
  },
]);
