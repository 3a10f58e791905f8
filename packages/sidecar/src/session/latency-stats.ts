// Percentiles over the most recent samples of a latency, cheap to update on
// every micro-turn (a ring buffer; sorting happens only when asked). The
// buffer grows with the samples up to its capacity, so a session that lives
// for a few chunks costs a few numbers, not a preallocated typed array.
export class LatencyStats {
  private readonly samples: number[] = [];
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
    if (this.samples.length === 0) return 0;
    const sorted = this.samples.slice().sort((a, b) => a - b);
    const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
    return sorted[rank]!;
  }
}
