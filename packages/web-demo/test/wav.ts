// A mono 16-bit PCM WAV of a sine tone, for Chromium's fake microphone.
import { writeFileSync } from "node:fs";

export function writeSineWav(path: string, { hz, seconds, sampleRateHz, amplitude }: { hz: number; seconds: number; sampleRateHz: number; amplitude: number }): void {
  const samples = Math.round(seconds * sampleRateHz);
  const wav = Buffer.alloc(44 + samples * 2);
  wav.write("RIFF", 0, "ascii");
  wav.writeUInt32LE(36 + samples * 2, 4);
  wav.write("WAVEfmt ", 8, "ascii");
  wav.writeUInt32LE(16, 16); // fmt chunk size
  wav.writeUInt16LE(1, 20); // PCM
  wav.writeUInt16LE(1, 22); // mono
  wav.writeUInt32LE(sampleRateHz, 24);
  wav.writeUInt32LE(sampleRateHz * 2, 28); // bytes per second
  wav.writeUInt16LE(2, 32); // bytes per frame
  wav.writeUInt16LE(16, 34); // bits per sample
  wav.write("data", 36, "ascii");
  wav.writeUInt32LE(samples * 2, 40);
  for (let i = 0; i < samples; i++) wav.writeInt16LE(Math.round(amplitude * 32767 * Math.sin((2 * Math.PI * hz * i) / sampleRateHz)), 44 + i * 2);
  writeFileSync(path, wav);
}
