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

  it("keeps only the rewind window of input time, however long the session runs", () => {
    const h = new TurnHistory(30_000);
    for (let seq = 0; seq < 3000; seq++) turn(h, seq, seq * 4, seq * 4 + 3, seq % 10 === 0 ? "a" : "");
    // 10 minutes of input: the newest chunk ends at 600 s; turns that ended by 570 s are gone.
    expect(h.length).toBe(150);
    expect(h.planRewind(599_000)).toBeUndefined();
  });

  it("keeps a turn whose output is still to be heard, even past the window", () => {
    const h = new TurnHistory(1000);
    turn(h, 0, 0, 3, "x".repeat(100)); // 6 s of output from 200 ms
    for (let seq = 1; seq < 20; seq++) turn(h, seq, 200 + seq, 201 + seq, "");
    expect(h.length).toBe(20);
    const plan = h.planRewind(3200)!;
    expect(plan.reappend.map((c) => c.seq)).toEqual(Array.from({ length: 19 }, (_, i) => i + 1));
    expect(plan.droppedText).toBe("x".repeat(50));
  });

  it("cuts no further back than the window when a barge-in is reported late", () => {
    const h = new TurnHistory(1000);
    for (let seq = 0; seq < 20; seq++) turn(h, seq, seq * 10, seq * 10 + 3, "ab");
    // Chunk 19 ends at 4,000 ms: turns whose input and output ended by 3,000 ms (seq 0–13) are forgotten.
    expect(h.length).toBe(6);
    const plan = h.planRewind(0)!;
    expect(plan.positionTokens).toBe(14 * 10 + 3);
    expect(plan.reappend.map((c) => c.seq)).toEqual([15, 16, 17, 18, 19]);
  });

  it("caps a playback ack at the output produced and forgets the turns it covers at the next record", () => {
    const h = new TurnHistory();
    turn(h, 0, 0, 3, "abc"); // output 200–380 ms
    turn(h, 1, 6, 9, "de"); // output 400–520 ms
    h.notePlayed(10_000);
    expect(h.playedUpToMs).toBe(520);
    h.notePlayed(100); // backwards: no change
    expect(h.playedUpToMs).toBe(520);
    turn(h, 2, 11, 14, "fghij"); // output 600–900 ms
    expect(h.length).toBe(1);
    expect(h.planRewind(700)!.positionTokens).toBe(14 + 1);
  });
});
