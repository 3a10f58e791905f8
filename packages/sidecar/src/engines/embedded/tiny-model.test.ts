import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { GGUF_MAGIC } from "./gguf-writer.js";
import { ensureTinyModel, writeTinyModel, resolveTinyModelConfig } from "./tiny-model.js";

const sha = (path: string): string => createHash("sha256").update(readFileSync(path)).digest("hex");

describe("tiny GGUF writer", () => {
  it("writes byte-identical files for the same config, different ones for another seed", () => {
    const dir = mkdtempSync(join(tmpdir(), "microturn-gguf-"));
    const a = join(dir, "a.gguf");
    const b = join(dir, "b.gguf");
    const c = join(dir, "c.gguf");
    writeTinyModel(a, resolveTinyModelConfig("tiny"));
    writeTinyModel(b, resolveTinyModelConfig("tiny"));
    writeTinyModel(c, resolveTinyModelConfig({ seed: 2 }));
    expect(sha(a)).toBe(sha(b));
    expect(sha(a)).not.toBe(sha(c));
    const head = readFileSync(a).subarray(0, 8);
    expect(head.subarray(0, 4).equals(GGUF_MAGIC)).toBe(true);
    expect(head.readUInt32LE(4)).toBe(3);
    const size = statSync(a).size;
    expect(size).toBeGreaterThan(500_000);
    expect(size).toBeLessThan(2_000_000);
  });

  it("caches by config: the second call returns the same path without rewriting", () => {
    const dir = mkdtempSync(join(tmpdir(), "microturn-gguf-cache-"));
    const first = ensureTinyModel({ dir });
    const mtime = statSync(first).mtimeMs;
    expect(ensureTinyModel({ dir })).toBe(first);
    expect(statSync(first).mtimeMs).toBe(mtime);
    expect(ensureTinyModel({ dir, size: { seed: 3 } })).not.toBe(first);
  });
});
