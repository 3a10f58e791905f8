// `microturn serve` on the echo engine whose process, once ready, meets a
// promise rejection that no code handles (the kind a bug leaves behind).
import { loadConfig } from "../../src/config.js";
import { serve } from "../../src/main.js";

const ready = serve(loadConfig(["--engine", "echo", "--port", "0", "--metrics-port", "0", "--log-level", "error", "--drain-ms", "100"]));
setTimeout(() => void Promise.reject(new Error("stray rejection from a test")), 300);
process.exitCode = await ready;
