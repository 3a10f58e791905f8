// Arithmetic for the `calculator` tool: a tokenizer and recursive-descent
// parser over numbers, + - * / % ^ (and **), parentheses, a few functions and
// constants. No eval, no property access: nothing but arithmetic can run.

const FUNCTIONS: Record<string, { arity: [number, number]; fn: (...args: number[]) => number }> = {
  sqrt: { arity: [1, 1], fn: Math.sqrt },
  cbrt: { arity: [1, 1], fn: Math.cbrt },
  abs: { arity: [1, 1], fn: Math.abs },
  round: { arity: [1, 1], fn: Math.round },
  floor: { arity: [1, 1], fn: Math.floor },
  ceil: { arity: [1, 1], fn: Math.ceil },
  sin: { arity: [1, 1], fn: Math.sin },
  cos: { arity: [1, 1], fn: Math.cos },
  tan: { arity: [1, 1], fn: Math.tan },
  asin: { arity: [1, 1], fn: Math.asin },
  acos: { arity: [1, 1], fn: Math.acos },
  atan: { arity: [1, 1], fn: Math.atan },
  ln: { arity: [1, 1], fn: Math.log },
  log: { arity: [1, 2], fn: (x, base) => (base === undefined ? Math.log10(x) : Math.log(x) / Math.log(base)) },
  log10: { arity: [1, 1], fn: Math.log10 },
  log2: { arity: [1, 1], fn: Math.log2 },
  exp: { arity: [1, 1], fn: Math.exp },
  pow: { arity: [2, 2], fn: Math.pow },
  min: { arity: [1, 64], fn: Math.min },
  max: { arity: [1, 64], fn: Math.max },
};

const CONSTANTS: Record<string, number> = { pi: Math.PI, e: Math.E, tau: 2 * Math.PI };

export const MAX_EXPRESSION_CHARS = 1000;
const MAX_DEPTH = 64;

export class CalculatorError extends Error {
  /** Character offset in the expression where the problem is. */
  readonly position: number;
  constructor(message: string, position: number) {
    super(message);
    this.name = "CalculatorError";
    this.position = position;
  }
}

type Token = { kind: "num"; value: number; pos: number } | { kind: "id"; name: string; pos: number } | { kind: "op"; op: string; pos: number };

function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < source.length) {
    const c = source[i] as string;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    // "_" groups digits (1_000); "," never does, so "max(1,500)" stays two arguments.
    const num = /^(?:\d+(?:_\d+)*(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?/.exec(source.slice(i));
    if (num !== null) {
      const text = num[0];
      const value = Number(text.replace(/_/g, ""));
      if (!Number.isFinite(value)) throw new CalculatorError(`"${text}" is not a number`, i);
      tokens.push({ kind: "num", value, pos: i });
      i += text.length;
      continue;
    }
    const id = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(source.slice(i));
    if (id !== null) {
      tokens.push({ kind: "id", name: id[0].toLowerCase(), pos: i });
      i += id[0].length;
      continue;
    }
    if (source.startsWith("**", i)) {
      tokens.push({ kind: "op", op: "^", pos: i });
      i += 2;
      continue;
    }
    const ops: Record<string, string> = { "+": "+", "-": "-", "−": "-", "*": "*", "×": "*", "/": "/", "÷": "/", "%": "%", "^": "^", "(": "(", ")": ")", ",": "," };
    const op = ops[c];
    if (op === undefined) throw new CalculatorError(`unexpected character "${c}"`, i);
    tokens.push({ kind: "op", op, pos: i });
    i++;
  }
  return tokens;
}

/** Evaluates an arithmetic expression; throws CalculatorError with a position on bad input. */
export function evaluateExpression(source: string): number {
  if (source.length > MAX_EXPRESSION_CHARS) throw new CalculatorError(`expression longer than ${MAX_EXPRESSION_CHARS} characters`, MAX_EXPRESSION_CHARS);
  const tokens = tokenize(source);
  if (tokens.length === 0) throw new CalculatorError("empty expression", 0);
  let index = 0;
  let depth = 0;
  const peek = (): Token | undefined => tokens[index];
  const isOp = (op: string): boolean => {
    const t = peek();
    return t !== undefined && t.kind === "op" && t.op === op;
  };
  const expect = (op: string): void => {
    if (!isOp(op)) throw new CalculatorError(`expected "${op}"`, peek()?.pos ?? source.length);
    index++;
  };
  const enter = (pos: number): void => {
    if (++depth > MAX_DEPTH) throw new CalculatorError("expression nested too deeply", pos);
  };

  // sum := product (("+" | "-") product)*
  function sum(): number {
    let value = product();
    while (isOp("+") || isOp("-")) {
      const op = (tokens[index++] as { op: string }).op;
      const right = product();
      value = op === "+" ? value + right : value - right;
    }
    return value;
  }
  // product := unary (("*" | "/" | "%") unary | implicit-multiplication)*
  function product(): number {
    let value = unary();
    for (;;) {
      if (isOp("*") || isOp("/") || isOp("%")) {
        const token = tokens[index++] as { op: string; pos: number };
        const right = unary();
        if ((token.op === "/" || token.op === "%") && right === 0) throw new CalculatorError("division by zero", token.pos);
        value = token.op === "*" ? value * right : token.op === "/" ? value / right : value % right;
      } else if (isOp("(") || peek()?.kind === "id") {
        value *= unary(); // "2(3+4)", "2pi"
      } else {
        return value;
      }
    }
  }
  // unary := ("-" | "+") unary | power
  function unary(): number {
    const t = peek();
    if (t !== undefined && t.kind === "op" && (t.op === "-" || t.op === "+")) {
      index++;
      enter(t.pos);
      const value = unary();
      depth--;
      return t.op === "-" ? -value : value;
    }
    return power();
  }
  // power := primary ("^" unary)?   (right-associative; -2^2 = -4, 2^-1 = 0.5)
  function power(): number {
    const base = primary();
    if (isOp("^")) {
      index++;
      return Math.pow(base, unary());
    }
    return base;
  }
  function primary(): number {
    const t = peek();
    if (t === undefined) throw new CalculatorError("expression ends too early", source.length);
    if (t.kind === "num") {
      index++;
      return t.value;
    }
    if (t.kind === "op" && t.op === "(") {
      index++;
      enter(t.pos);
      const value = sum();
      expect(")");
      depth--;
      return value;
    }
    if (t.kind === "id") {
      index++;
      // Own keys only: "constructor" or "toString" must not reach Object.prototype.
      const fn = Object.hasOwn(FUNCTIONS, t.name) ? FUNCTIONS[t.name] : undefined;
      if (fn !== undefined) {
        expect("(");
        enter(t.pos);
        const args = [sum()];
        while (isOp(",")) {
          index++;
          args.push(sum());
        }
        expect(")");
        depth--;
        const [lo, hi] = fn.arity;
        if (args.length < lo || args.length > hi) throw new CalculatorError(`${t.name} takes ${lo === hi ? lo : `${lo} to ${hi}`} argument(s), got ${args.length}`, t.pos);
        return fn.fn(...args);
      }
      const constant = Object.hasOwn(CONSTANTS, t.name) ? CONSTANTS[t.name] : undefined;
      if (constant !== undefined) return constant;
      throw new CalculatorError(`unknown name "${t.name}"`, t.pos);
    }
    throw new CalculatorError(`unexpected "${t.op}"`, t.pos);
  }

  const result = sum();
  const rest = peek();
  if (rest !== undefined) throw new CalculatorError(`unexpected "${rest.kind === "op" ? rest.op : rest.kind === "id" ? rest.name : rest.value}"`, rest.pos);
  if (!Number.isFinite(result)) throw new CalculatorError("the result is not a finite number", 0);
  return result;
}
