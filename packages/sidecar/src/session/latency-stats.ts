// Percentiles over the most recent samples of a latency, cheap to update on
// every micro-turn (a ring buffer; sorting happens only when asked).
export class LatencyStats {
  private readonly samples: Float64Array;
  private count = 0;
  private next = 0;
  total = 0;

  constructor(capacity = 1024) {
    this.samples = new Float64Array(capacity);
  }

  add(value: number): void {
    this.samples[this.next] = value;
    this.next = (this.next + 1) % this.samples.length;
    if (this.count < this.samples.length) this.count++;
    this.total += value;
  }

  get size(): number {
    return this.count;
  }

  /** The q-quantile (0..1) of the kept samples, nearest rank; 0 when empty. */
  quantile(q: number): number {
    if (this.count === 0) return 0;
    const sorted = Array.from(this.samples.subarray(0, this.count)).sort((a, b) => a - b);
    const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
    return sorted[rank]!;
  }
}
