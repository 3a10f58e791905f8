// The breaking-change gate itself: buf must refuse a deliberate break of the
// contract and accept a compatible addition, so CI cannot pass a silent break.
import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";

const root = join(__dirname, "..");
const buf = join(root, "node_modules/.bin/buf");
let work: string | undefined;

function copyContract(): string {
  work = mkdtempSync(join(tmpdir(), "microturn-proto-"));
  cpSync(join(root, "proto"), join(work, "proto"), { recursive: true });
  cpSync(join(root, "buf.yaml"), join(work, "buf.yaml"));
  return work;
}

function breaking(dir: string): { ok: boolean; output: string } {
  try {
    execFileSync(buf, ["breaking", dir, "--against", root], { cwd: root, encoding: "utf8", stdio: "pipe" });
    return { ok: true, output: "" };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    return { ok: false, output: `${e.stdout ?? ""}${e.stderr ?? ""}` };
  }
}

afterEach(() => {
  if (work) rmSync(work, { recursive: true, force: true });
  work = undefined;
});

describe("buf breaking gate", () => {
  it("refuses a changed field type", () => {
    const dir = copyContract();
    const file = join(dir, "proto/microturn/v1/interaction.proto");
    writeFileSync(file, readFileSync(file, "utf8").replace("uint64 played_up_to_ms = 1;", "string played_up_to_ms = 1;"));
    const result = breaking(dir);
    expect(result.ok).toBe(false);
    expect(result.output).toMatch(/played_up_to_ms/);
  });

  it("refuses a removed field whose number is not reserved", () => {
    const dir = copyContract();
    const file = join(dir, "proto/microturn/v1/engine.proto");
    const text = readFileSync(file, "utf8");
    expect(text).toContain("  float temperature = 11;\n");
    writeFileSync(file, text.replace("  float temperature = 11;\n", ""));
    expect(breaking(dir).ok).toBe(false);
  });

  it("accepts a new field", () => {
    const dir = copyContract();
    const file = join(dir, "proto/microturn/v1/interaction.proto");
    const text = readFileSync(file, "utf8").replace(
      "  uint64 played_up_to_ms = 1;\n}",
      "  uint64 played_up_to_ms = 1;\n  // Test-only addition.\n  uint32 buffered_ms = 2;\n}",
    );
    expect(text).toContain("buffered_ms");
    writeFileSync(file, text);
    expect(breaking(dir).ok).toBe(true);
  });
});
