// Validation of raw RGB frames (proto `VideoFrame`): shape and byte count.

import { MediaError } from "./errors.js";

/** Throws unless `value` is a positive integer pixel count. */
export function checkDimension(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 1) {
    throw new MediaError("invalid_dimensions", `${name} must be a positive integer, got ${String(value)}`);
  }
}

/** Checks that `rgb` holds exactly width x height x 3 bytes. */
export function checkRgbFrame(rgb: Uint8Array, width: number, height: number): void {
  checkDimension("width", width);
  checkDimension("height", height);
  if (!(rgb instanceof Uint8Array) && !((rgb as unknown) instanceof Uint8ClampedArray)) {
    throw new MediaError("invalid_length", "rgb must be a Uint8Array of interleaved RGB bytes");
  }
  if (rgb.length !== width * height * 3) {
    throw new MediaError(
      "invalid_length",
      `rgb has ${rgb.length} bytes; a ${width}x${height} RGB frame has ${width * height * 3}`,
    );
  }
}
