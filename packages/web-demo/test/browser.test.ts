// The demo page in headless Chromium against a real sidecar: Chromium's fake
// microphone plays a generated 440 Hz tone, the page streams it over
// WebSocket, and the test checks what the sidecar received and what the page shows.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ClientEvent, Modality } from "@microturn/protocol";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from "vitest";
import { startPageServer, type PageServer } from "../page-server.js";
import { writeSineWav } from "./wav.js";
import { loadConfig, startSidecar, type Sidecar } from "@microturn/sidecar";

const CHROMIUM = "/usr/bin/chromium";
const haveChromium = existsSync(CHROMIUM);
const built = existsSync(new URL("../dist/main.js", import.meta.url));
const skipReason = !haveChromium
  ? `no ${CHROMIUM}: apt-get install --no-install-recommends chromium`
  : !built
    ? "the page is not built: npm run build -w @microturn/web-demo"
    : "";
if (skipReason) console.warn(`web demo browser test skipped: ${skipReason}`);
const TONE_HZ = 440;

async function until<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Pitch of PCM16 by counting swings past ±30% of its RMS (hysteresis keeps the
 * capture's low-level noise near zero from counting): enough to tell the tone
 * from silence, noise or a wrong sample rate.
 */
function toneHz(pcm: Int16Array, sampleRateHz: number): number {
  const threshold = 0.3 * rms(pcm) * 32768;
  let side = 0;
  let swings = 0;
  for (const s of pcm) {
    const now = s > threshold ? 1 : s < -threshold ? -1 : side;
    if (side !== 0 && now !== side) swings++;
    side = now;
  }
  return swings / 2 / (pcm.length / sampleRateHz);
}

function rms(pcm: Int16Array): number {
  let sum = 0;
  for (const s of pcm) sum += s * s;
  return Math.sqrt(sum / Math.max(1, pcm.length)) / 32768;
}

describe("web demo in headless Chromium", () => {
  let dir: string;
  let sidecar: Sidecar;
  let pageServer: PageServer;
  let browser: Browser;
  let page: Page;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    if (skipReason) return;
    dir = mkdtempSync(join(tmpdir(), "microturn-web-"));
    const wav = join(dir, "tone.wav");
    writeSineWav(wav, { hz: TONE_HZ, seconds: 1, sampleRateHz: 48_000, amplitude: 0.5 });
    const config = loadConfig(["--port", "0", "--metrics-port", "0", "--log-level", "error", "--record-dir", join(dir, "recordings")]);
    sidecar = await startSidecar(config); // the embedded engine with its tiny random-weight model
    pageServer = await startPageServer({ sidecarHttpAddress: sidecar.server.httpAddress! });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        `--use-file-for-fake-audio-capture=${wav}`,
        "--autoplay-policy=no-user-gesture-required",
      ],
    });
    page = await browser.newPage({ viewport: { width: 1200, height: 760 } });
    page.on("pageerror", (err) => pageErrors.push(`pageerror: ${err.message}`));
    page.on("console", (msg) => {
      if (msg.type() === "error") pageErrors.push(`console: ${msg.text()}`);
    });
  });

  afterAll(async () => {
    await browser?.close();
    await pageServer?.close();
    await sidecar?.shutdown();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it.skipIf(skipReason)(`streams the microphone to the sidecar and renders its outputs${skipReason ? ` (skipped: ${skipReason})` : ""}`, async () => {
    onTestFailed(async () => {
      // What the page showed, to tell a page-side failure from a server-side one.
      console.error(`page status: ${await page.textContent("#status")}\n${await page.textContent("#counts")}`);
      console.error((await page.locator("#timeline li").allTextContents()).slice(-20).join("\n"));
      console.error(pageErrors.join("\n"));
    });
    await page.goto(`${pageServer.url}?record=1`);
    await page.click("#start");
    await page.waitForSelector('#status[data-state="live"]', { timeout: 20_000 });
    await page.waitForSelector("#timeline li.microphone", { timeout: 10_000 });
    // The page asked to be spoken to; the embedded engine writes text only, so it went on with text.
    expect((await page.locator("#timeline li").allTextContents()).join("\n")).toContain("the engine writes text only");

    // 12 chunks of 200 ms audio leave the page, and the sidecar processes them.
    const audioRows = page.locator("#timeline li.turn .in", { hasText: "audio 200 ms" });
    await until("12 audio chunks sent", async () => (await audioRows.count()) >= 12);
    const handle = await until("a session on the sidecar", () => [...sidecar.hub.sessions()][0]);
    await until("12 chunks processed by the sidecar", () => handle.session.chunkCount >= 12);

    // Text from the box goes out with the next chunk.
    await page.fill("#text", "hello from the browser");
    await page.press("#text", "Enter");

    // The Delegate button starts a background task; the sidecar's answer about it (a result, or
    // "failed: no background model" where none is configured) shows in the timeline.
    await page.fill("#text", "list three colours");
    await page.click("#delegate");
    await page.waitForSelector("#timeline li.background >> text=/task \\S+ (done|failed|timed out)/", { timeout: 30_000 });

    // Page side: micro-turn rows with their outputs, the transcript, the counts.
    const rendered = await until("10 outputs in the timeline", async () => {
      const n = await page.locator("#timeline li.turn .out:not(.pending)").count();
      return n >= 10 && n;
    });
    expect(rendered).toBeGreaterThanOrEqual(10);
    await expect.poll(() => page.locator("#transcript p.you").textContent()).toContain("hello from the browser");
    expect(await page.textContent("#counts")).toMatch(/\d+ chunks sent \(\d+\.\d s audio\)/);
    if (process.env.WEB_DEMO_SCREENSHOT) await page.screenshot({ path: process.env.WEB_DEMO_SCREENSHOT });

    // Stopping ends the session cleanly on both sides.
    await page.click("#start");
    await page.waitForSelector('#status[data-state="closed"]', { timeout: 10_000 });
    expect(await page.textContent("#status")).toBe("closed");
    await until("the sidecar to end the session", () => sidecar.hub.size === 0);

    // The sidecar's recording holds what the page sent: the typed text, and
    // 16 kHz PCM of the fake microphone's tone (resampled by the SDK from the AudioContext rate).
    const file = readdirSync(join(dir, "recordings")).find((f) => f.endsWith(".jsonl"));
    expect(file).toBeDefined();
    const inputs = readFileSync(join(dir, "recordings", file!), "utf8")
      .split("\n")
      .filter(Boolean)
      .slice(1) // the header
      .map((line) => ClientEvent.fromJSON(JSON.parse(line).event).event)
      .flatMap((event) => (event?.$case === "input" ? [event.value] : []));
    expect(inputs.map((chunk) => chunk.text).join("")).toContain("hello from the browser");
    const pcm = inputs.flatMap((chunk) => (chunk.pcm ? [chunk.pcm] : []));
    expect(pcm.length).toBeGreaterThanOrEqual(12);
    expect(pcm.every((p) => p.sampleRateHz === 16_000 && p.channels === 1)).toBe(true);
    // The first pieces carry the capture's start-up and the last its stop; the tone is steady between.
    const steady = Buffer.concat(pcm.slice(2, -1).map((p) => p.pcm16));
    const all = new Int16Array(Uint8Array.from(steady).buffer);
    expect(rms(all)).toBeGreaterThan(0.02);
    expect(Math.abs(toneHz(all, 16_000) - TONE_HZ)).toBeLessThan(10);

    // A text-only engine gets the audio as notes (the page asks for UNSUPPORTED_INPUT_NOTE): one warning, no errors.
    const textOnly = !sidecar.engine.capabilities.inputModalities.includes(Modality.MODALITY_AUDIO);
    expect(await page.locator("#timeline li.warning", { hasText: "replaced by a note" }).count()).toBe(textOnly ? 1 : 0);
    expect(await page.locator("#timeline li.error").count()).toBe(0);
    expect(pageErrors).toEqual([]);
  }, 60_000);
});
