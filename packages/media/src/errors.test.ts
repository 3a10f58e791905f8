import { describe, expect, it } from "vitest";
import { MediaError, checkFinite, checkMono, checkSampleRate } from "./errors.js";

describe("MediaError", () => {
  it("carries a code and a name and is an Error", () => {
    const e = new MediaError("invalid_option", "bad");
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe("MediaError");
    expect(e.code).toBe("invalid_option");
    expect(e.message).toBe("bad");
  });

  it("is recognised by brand, not prototype, so duplicate package copies agree", () => {
    // What another copy of the package would construct: a different class with the same global brand.
    class Other extends Error {
      constructor() {
        super("x");
        Object.defineProperty(this, Symbol.for("microturn.MediaError"), { value: true });
      }
    }
    expect(MediaError.isInstance(new Other())).toBe(true);
    expect(MediaError.isInstance(new Error("x"))).toBe(false);
    expect(MediaError.isInstance(null)).toBe(false);
    expect(MediaError.isInstance({ code: "invalid_option" })).toBe(false);
  });
});

describe("input checks", () => {
  it("accepts good input and names what is wrong with bad input", () => {
    expect(() => checkSampleRate(16000)).not.toThrow();
    expect(() => checkSampleRate(0)).toThrow("sampleRate must be a positive integer in Hz, got 0");
    expect(() => checkSampleRate(Number.POSITIVE_INFINITY)).toThrow(/got Infinity/);
    expect(() => checkFinite(Float32Array.of(0, 1, -1))).not.toThrow();
    expect(() => checkFinite([0, 0, Number.NEGATIVE_INFINITY], 10)).toThrow("sample 12 is -Infinity; audio samples must be finite");
    expect(() => checkMono(1)).not.toThrow();
    expect(() => checkMono(2)).toThrow(expect.objectContaining({ code: "not_mono" }));
  });
});
