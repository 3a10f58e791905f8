// The built package as a TypeScript app sees it: the README's and docs/sdk.md's
// examples typecheck against it, and projects that compile to ES modules or to
// CommonJS (module node16) resolve every entry's types. Needs `npm run build` first.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { afterAll, describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("../../../", import.meta.url));
const built = ["sdk", "protocol", "media"].every((p) => existsSync(join(root, "packages", p, "dist", "index.d.cts")));
const dirs: string[] = [];

afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** The first ```ts block after `heading` in a markdown file of the repository. */
function example(file: string, heading = ""): string {
  const text = readFileSync(join(root, file), "utf8");
  const from = heading ? text.indexOf(heading) : 0;
  expect(from, `${heading} in ${file}`).toBeGreaterThanOrEqual(0);
  const match = /```ts\n([\s\S]*?)```/.exec(text.slice(from));
  expect(match, `a ts block in ${file}`).not.toBeNull();
  return match![1]!;
}

/** Type errors of `files` compiled as an app whose package.json says `type`. */
function typeErrors(type: "module" | "commonjs", files: Record<string, string>): string[] {
  const dir = mkdtempSync(join(tmpdir(), `microturn-types-${type}-`));
  dirs.push(dir);
  symlinkSync(join(root, "node_modules"), join(dir, "node_modules"), "dir");
  writeFileSync(join(dir, "package.json"), JSON.stringify({ type }));
  mkdirSync(join(dir, "src"));
  for (const [name, source] of Object.entries(files)) writeFileSync(join(dir, "src", name), source);
  const program = ts.createProgram(
    Object.keys(files).map((name) => join(dir, "src", name)),
    {
      strict: true,
      noEmit: true,
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.Node16,
      moduleResolution: ts.ModuleResolutionKind.Node16,
      types: ["node"],
      typeRoots: [join(root, "node_modules", "@types")],
      skipLibCheck: true,
    },
  );
  return ts.getPreEmitDiagnostics(program).map((d) => `${d.file?.fileName.slice(dir.length) ?? ""}: ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`);
}

// What the examples leave to the app: a microphone and a player.
const appParts = `
declare const mic: { on(event: "data", listener: (pcm: Float32Array) => void): void };
declare const player: { on(event: "played", listener: (ms: number) => void): void };
`;

describe.skipIf(!built)("the package's types, as an app compiles against them", () => {
  it("the README's and docs/sdk.md's examples typecheck in an ES module app", () => {
    const errors = typeErrors("module", {
      "readme.ts": example("README.md", "## Use it") + appParts,
      "sdk-doc.ts": example("docs/sdk.md") + appParts,
      "browser.ts": `
        import { ErrorCode, Microturn, OutputMode, type ReconnectingInfo, type SessionAPIError } from "@microturn/sdk/browser";
        const session = new Microturn({ url: "ws://127.0.0.1:9464" }).session({ outputMode: OutputMode.OUTPUT_MODE_AUDIO });
        session.on("reconnecting", (info: ReconnectingInfo) => console.log(info.attempt));
        session.on("error", (error) => console.log((error as SessionAPIError).sessionError?.code === ErrorCode.ERROR_CODE_UNSUPPORTED_MODALITY));
      `,
    });
    expect(errors).toEqual([]);
  });

  it("every entry resolves with its types in a CommonJS app", () => {
    const errors = typeErrors("commonjs", {
      "app.ts": `
        import { Microturn, ConnectionError } from "@microturn/sdk";
        import { Microturn as BrowserMicroturn } from "@microturn/sdk/browser";
        import { createScriptedSession } from "@microturn/sdk/testing";
        import { PROTOCOL_VERSION } from "@microturn/protocol";
        export const parts = [Microturn, BrowserMicroturn, ConnectionError, createScriptedSession, PROTOCOL_VERSION];
      `,
    });
    expect(errors).toEqual([]);
  });
});
