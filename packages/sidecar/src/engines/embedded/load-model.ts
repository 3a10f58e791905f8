// Loads a GGUF model into llama.cpp (node-llama-cpp), offline and CPU-only by
// default, after checking the file so a wrong path fails with a typed error
// instead of a native crash or a long load.
import { open } from "node:fs/promises";
import { getLlama, LlamaLogLevel, type Llama, type LlamaModel } from "node-llama-cpp";
import { EngineError } from "../errors.js";
import { GGUF_MAGIC } from "./gguf-writer.js";

/** Tag the tiny-model writer puts in `general.tags`. */
export const RANDOM_WEIGHTS_TAG = "microturn-random-weights";

const llamas = new Map<string, Promise<Llama>>();

/** One llama.cpp binding per process and GPU choice; `getLlama` is slow (~0.5–2 s) and holds native state. */
export function sharedLlama(gpu: boolean): Promise<Llama> {
  const key = gpu ? "auto" : "cpu";
  let llama = llamas.get(key);
  if (!llama) {
    // build "never" + skipDownload: never compile or fetch; use the installed prebuilt.
    llama = getLlama({
      gpu: gpu ? "auto" : false,
      build: "never",
      skipDownload: true,
      usePrebuiltBinaries: true,
      progressLogs: false,
      logLevel: LlamaLogLevel.error,
    });
    llama.catch(() => llamas.delete(key));
    llamas.set(key, llama);
  }
  return llama;
}

/** Throws EngineError("invalid_model") unless `path` is a readable file starting with the GGUF magic. */
export async function assertGgufFile(path: string): Promise<void> {
  let handle;
  try {
    handle = await open(path, "r");
  } catch (cause) {
    throw new EngineError("invalid_model", `model file not readable: ${path} (${(cause as NodeJS.ErrnoException).code ?? "error"})`, { cause });
  }
  try {
    const head = Buffer.alloc(4);
    const { bytesRead } = await handle.read(head, 0, 4, 0);
    if (bytesRead < 4 || !head.equals(GGUF_MAGIC)) {
      throw new EngineError("invalid_model", `not a GGUF file (bad magic bytes): ${path}`);
    }
  } catch (cause) {
    if (EngineError.isInstance(cause)) throw cause;
    throw new EngineError("invalid_model", `model file not readable: ${path}`, { cause });
  } finally {
    await handle.close();
  }
}

export interface LoadedModel {
  model: LlamaModel;
  randomWeights: boolean;
}

export async function loadGgufModel(path: string, gpu: boolean): Promise<LoadedModel> {
  await assertGgufFile(path);
  const llama = await sharedLlama(gpu);
  let model: LlamaModel;
  try {
    model = await llama.loadModel({ modelPath: path, gpuLayers: gpu ? "auto" : 0 });
  } catch (cause) {
    throw new EngineError("invalid_model", `llama.cpp could not load ${path}: ${(cause as Error).message}`, { cause });
  }
  const tags = (model.fileInfo.metadata.general as { tags?: unknown } | undefined)?.tags;
  const randomWeights = Array.isArray(tags) && tags.includes(RANDOM_WEIGHTS_TAG);
  return { model, randomWeights };
}
