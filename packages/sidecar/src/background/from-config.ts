// Builds the background-model client the config names. `embedded` is added by
// the embedded engine (it shares the loaded model); the others are network clients.
import type { SidecarConfig } from "../config.js";
import type { Logger } from "../logger.js";
import type { BackgroundClient } from "./client.js";
import { BackgroundError } from "./errors.js";
import { OpenAiChatClient } from "./openai-client.js";
import { fetchSglangTokenizer, SglangGrpcChatClient } from "./sglang-grpc-client.js";
import { SglangRuntimeClient } from "./sglang-runtime-client.js";

export async function createBackgroundClient(
  config: SidecarConfig,
  embedded?: () => Promise<BackgroundClient>,
  logger?: Logger,
): Promise<BackgroundClient | undefined> {
  switch (config.background) {
    case "none":
      return undefined;
    case "openai":
      // A connection for every task the sidecar may run at once: one session's long tasks must not hold the others' back.
      return new OpenAiChatClient({
        baseUrl: config.backgroundUrl,
        apiKey: config.backgroundApiKey || undefined,
        model: config.backgroundModel,
        connections: config.maxSessions * config.backgroundMaxConcurrent,
      });
    case "sglang-grpc": {
      const client = new SglangRuntimeClient({ address: config.backgroundUrl, model: config.backgroundModel });
      try {
        await client.check();
      } catch (err) {
        // Another service on the port will not change: the sidecar does not start. A server not up yet may come.
        if (!BackgroundError.isInstance(err) || err.code === "bad_response") {
          await client.close();
          throw err;
        }
        logger?.warn("background model not reachable at start; tasks fail until it is", { url: config.backgroundUrl, error: err.message });
      }
      return client;
    }
    case "sglang-smg-grpc": {
      const address = config.backgroundUrl.replace(/^grpc:\/\//, "");
      const tokenizer = await fetchSglangTokenizer(address, { deadlineMs: 60_000 });
      return new SglangGrpcChatClient({ address, tokenizer });
    }
    case "embedded":
      return embedded ? embedded() : undefined;
  }
}
