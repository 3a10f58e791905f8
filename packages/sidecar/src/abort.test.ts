import { describe, expect, it } from "vitest";
import { followSignal } from "./abort.js";

describe("followSignal", () => {
  it("aborts with the parent's reason, and can abort alone without touching the parent", () => {
    const parent = new AbortController();
    const a = followSignal(parent.signal);
    parent.abort("stop");
    expect(a.controller.signal.aborted).toBe(true);
    expect(a.controller.signal.reason).toBe("stop");

    const other = new AbortController();
    const b = followSignal(other.signal);
    b.controller.abort();
    expect(other.signal.aborted).toBe(false);
  });

  it("is aborted at once when the parent already is, and follows nothing after release", () => {
    const done = new AbortController();
    done.abort("early");
    expect(followSignal(done.signal).controller.signal.reason).toBe("early");

    const parent = new AbortController();
    const f = followSignal(parent.signal);
    f.release();
    parent.abort();
    expect(f.controller.signal.aborted).toBe(false);
    expect(followSignal(undefined).controller.signal.aborted).toBe(false);
  });
});
