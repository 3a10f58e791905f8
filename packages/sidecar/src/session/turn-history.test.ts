import { describe, expect, it } from "vitest";
import { TurnHistory } from "./turn-history.js";

const chunk = (seq: number) => ({ seq, startMs: seq * 200, durationMs: 200, text: `u${seq}` });

function turn(h: TurnHistory, seq: number, inputStart: number, inputEnd: number, output: string) {
  const outputStartMs = h.nextOutputStart(chunk(seq));
  h.record({
    seq,
    chunk: chunk(seq),
    inputStartTokens: inputStart,
    inputEndTokens: inputEnd,
    outputEndTokens: inputEnd + output.length,
    outputText: output,
    outputStartMs,
    outputDurationMs: output.length * 60,
  });
}

describe("TurnHistory", () => {
  it("places output after its input and after earlier output", () => {
    const h = new TurnHistory();
    turn(h, 0, 0, 3, "abcdefghij"); // 600 ms from 200
    expect(h.last()!.outputStartMs).toBe(200);
    turn(h, 1, 13, 16, "xy");
    expect(h.last()!.outputStartMs).toBe(800);
    expect(h.pendingOutputMs(400)).toBe(520);
    expect(h.pendingOutputMs(1000)).toBe(0);
  });

  it("plans a cut at the heard share and re-appends later input", () => {
    const h = new TurnHistory();
    turn(h, 0, 0, 3, "abcdefghij");
    turn(h, 1, 13, 16, "");
    const plan = h.planRewind(200 + 300)!; // half of turn 0 heard
    expect(plan.positionTokens).toBe(3 + 5);
    expect(plan.reappend.map((c) => c.seq)).toEqual([1]);
    expect(plan.droppedText).toBe("fghij");
    h.applyRewind(plan, 500, [{ inputStartTokens: 8, inputEndTokens: 11 }]);
    expect(h.pendingOutputMs(500)).toBe(0);
    expect(h.planRewind(500)).toBeUndefined();
  });

  it("has nothing to cut when everything was heard", () => {
    const h = new TurnHistory();
    turn(h, 0, 0, 3, "ab");
    expect(h.planRewind(10_000)).toBeUndefined();
  });
});
