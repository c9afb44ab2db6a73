/*
 * A sliding window of outcome counts in time buckets, shared by the ratio rules and adaptive
 * throttling: a ring of `buckets` slots of `windowMs / buckets` each, no allocation per outcome.
 */

/** Counts of good and bad outcomes over the last `windowMs` milliseconds, in buckets. */
export class BucketWindow {
  readonly #bucketMs: number;
  /** The first slot number each bucket holds counts for; -1 for none yet. */
  readonly #slots: Float64Array;
  readonly #total: Uint32Array;
  readonly #bad: Uint32Array;
  /** Outcomes in the window, as of the last `sum`. */
  total = 0;
  /** Bad outcomes in the window, as of the last `sum`. */
  bad = 0;

  constructor(windowMs: number, buckets: number) {
    this.#bucketMs = windowMs / buckets;
    this.#slots = new Float64Array(buckets).fill(-1);
    this.#total = new Uint32Array(buckets);
    this.#bad = new Uint32Array(buckets);
  }

  /** Counts one outcome at `now` (milliseconds). */
  add(now: number, bad: boolean): void {
    const slot = Math.floor(now / this.#bucketMs);
    const i = slot % this.#slots.length;
    if (this.#slots[i] !== slot) {
      this.#slots[i] = slot;
      this.#total[i] = 0;
      this.#bad[i] = 0;
    }
    this.#total[i]!++;
    if (bad) this.#bad[i]!++;
  }

  /**
   * Sums the buckets inside the window at `now` (the current one and the `buckets - 1` before it)
   * into `total` and `bad`.
   */
  sum(now: number): void {
    const oldest = Math.floor(now / this.#bucketMs) - this.#slots.length + 1;
    let total = 0;
    let bad = 0;
    for (let i = 0; i < this.#slots.length; i++) {
      if (this.#slots[i]! < oldest) continue;
      total += this.#total[i]!;
      bad += this.#bad[i]!;
    }
    this.total = total;
    this.bad = bad;
  }

  /** Forgets every outcome. */
  reset(): void {
    this.#slots.fill(-1);
  }
}
