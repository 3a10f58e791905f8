// Percentiles over the most recent samples of a latency, cheap to update on
// every micro-turn (a ring buffer; sorting happens only when asked). The
// buffer grows with the samples up to its capacity, so a session that lives
// for a few chunks costs a few numbers, not a preallocated typed array.
export class LatencyStats {
  private readonly samples: number[] = [];
  /** Reused for sorting, so asking for quantiles allocates nothing once it is sized. */
  private scratch: Float64Array | undefined;
  private next = 0;
  total = 0;

  constructor(private readonly capacity = 1024) {}

  add(value: number): void {
    if (this.samples.length < this.capacity) this.samples.push(value);
    else {
      this.samples[this.next] = value;
      this.next = (this.next + 1) % this.capacity;
    }
    this.total += value;
  }

  get size(): number {
    return this.samples.length;
  }

  /** The q-quantile (0..1) of the kept samples, nearest rank; 0 when empty. */
  quantile(q: number): number {
    return this.quantiles([q])[0]!;
  }

  /** Several quantiles from one sort, in the order asked. */
  quantiles(qs: readonly number[]): number[] {
    const n = this.samples.length;
    if (n === 0) return qs.map(() => 0);
    if (!this.scratch || this.scratch.length < n) this.scratch = new Float64Array(Math.min(this.capacity, Math.max(n, 2 * (this.scratch?.length ?? 8))));
    const sorted = this.scratch.subarray(0, n);
    for (let i = 0; i < n; i++) sorted[i] = this.samples[i]!;
    sorted.sort();
    return qs.map((q) => sorted[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))]!);
  }
}
