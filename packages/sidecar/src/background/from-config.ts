// Builds the background-model client the config names. `embedded` is added by
// the embedded engine (it shares the loaded model); the others are network clients.
import type { SidecarConfig } from "../config.js";
import type { BackgroundClient } from "./client.js";
import { OpenAiChatClient } from "./openai-client.js";
import { fetchSglangTokenizer, SglangGrpcChatClient } from "./sglang-grpc-client.js";
import { SglangRuntimeClient } from "./sglang-runtime-client.js";

export async function createBackgroundClient(config: SidecarConfig, embedded?: () => Promise<BackgroundClient>): Promise<BackgroundClient | undefined> {
  switch (config.background) {
    case "none":
      return undefined;
    case "openai":
      return new OpenAiChatClient({ baseUrl: config.backgroundUrl, apiKey: config.backgroundApiKey || undefined, model: config.backgroundModel });
    case "sglang-grpc":
      return new SglangRuntimeClient({ address: config.backgroundUrl, model: config.backgroundModel });
    case "sglang-smg-grpc": {
      const address = config.backgroundUrl.replace(/^grpc:\/\//, "");
      const tokenizer = await fetchSglangTokenizer(address, { deadlineMs: 60_000 });
      return new SglangGrpcChatClient({ address, tokenizer });
    }
    case "embedded":
      return embedded ? embedded() : undefined;
  }
}
