import { defineConfig } from "tsup";

// Two browser scripts: the page and the AudioWorklet module it loads by URL
// (a worklet runs in its own global scope, so it cannot share the page bundle).
export default defineConfig({
  entry: { main: "src/main.ts", "mic-worklet": "src/mic-worklet.ts" },
  format: ["esm"],
  platform: "browser",
  target: "es2022",
  sourcemap: true,
  clean: true,
  splitting: false,
  dts: false,
  noExternal: [/.*/],
});
