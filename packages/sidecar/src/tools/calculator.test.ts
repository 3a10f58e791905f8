import { describe, expect, it } from "vitest";
import { CalculatorError, evaluateExpression } from "./calculator.js";

describe("evaluateExpression", () => {
  it.each([
    ["1 + 2 * 3", 7],
    ["(1 + 2) * 3", 9],
    ["2 ^ 3 ^ 2", 512],
    ["2 ** 10", 1024],
    ["-2 ^ 2", -4],
    ["2 ^ -1", 0.5],
    ["10 % 3", 1],
    ["1.5e3 / 3", 500],
    ["1_000 * 2", 2000],
    ["sqrt(16) + max(1, 500, 3)", 504],
    ["log(8, 2)", 3],
    ["log(1000)", 3],
    ["2(3 + 4)", 14],
    ["3 × 4 − 2 ÷ 2", 11],
    ["round(pi * 100) / 100", 3.14],
    ["--3", 3],
  ])("%s = %d", (expression, expected) => {
    expect(evaluateExpression(expression)).toBeCloseTo(expected, 10);
  });

  it.each([
    ["1 / 0", "division by zero"],
    ["2 +", "ends too early"],
    ["foo(1)", 'unknown name "foo"'],
    ["process.exit()", 'unexpected character "."'],
    ["constructor", 'unknown name "constructor"'],
    ["toString(1)", 'unknown name "tostring"'],
    ["1 2", 'unexpected "2"'],
    ["sqrt(1, 2)", "sqrt takes 1 argument"],
    ["(((1)", 'expected ")"'],
    ["9 ^ 999", "not a finite number"],
    ["", "empty expression"],
    ["(".repeat(100) + "1" + ")".repeat(100), "nested too deeply"],
    ["1+".repeat(600) + "1", "longer than 1000"],
  ])("%s is refused: %s", (expression, message) => {
    expect(() => evaluateExpression(expression)).toThrow(CalculatorError);
    expect(() => evaluateExpression(expression)).toThrow(message);
  });
});
