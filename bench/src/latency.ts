/**
 * Latency samples in microseconds, kept in a growable Float64Array and sorted once at the end.
 * Exact percentiles, no bucketing error; a few million samples cost tens of MB, which is fine here.
 */
export class LatencyRecorder {
  #samples: Float64Array;
  #count = 0;

  constructor(initialCapacity = 1 << 16) {
    this.#samples = new Float64Array(initialCapacity);
  }

  get count(): number {
    return this.#count;
  }

  record(us: number): void {
    if (this.#count === this.#samples.length) {
      const grown = new Float64Array(this.#samples.length * 2);
      grown.set(this.#samples);
      this.#samples = grown;
    }
    this.#samples[this.#count++] = us;
  }

  reset(): void {
    this.#count = 0;
  }

  /** Nearest-rank percentiles; null when nothing was recorded. */
  percentiles(): { p50Us: number | null; p99Us: number | null; p999Us: number | null } {
    const n = this.#count;
    if (n === 0) return { p50Us: null, p99Us: null, p999Us: null };
    const sorted = this.#samples.subarray(0, n).sort();
    const at = (q: number): number => round1(sorted[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))] ?? 0);
    return { p50Us: at(0.5), p99Us: at(0.99), p999Us: at(0.999) };
  }
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}
