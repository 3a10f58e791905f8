// A benchmark's options: `--name=value` (or `--name` alone, an empty value), the
// value taken whole, so it may hold `=` itself (--compare-args=--spin-window-ms=0).
export function benchArgs(argv: string[] = process.argv.slice(2)): Map<string, string> {
  return new Map(argv.map((a) => /^(?:--)?([^=]*)=?(.*)$/s.exec(a)!.slice(1, 3) as [string, string]));
}
