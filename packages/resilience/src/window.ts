/*
 * The sliding window every counting policy shares (the ratio rules, adaptive throttling, the retry
 * budget): two counts over the last `windowMs` milliseconds, kept in a ring of `buckets` time
 * buckets with running totals. No allocation per count, and a count inside the current bucket costs
 * one comparison of the clock; buckets are dropped only when the clock crosses into a new one.
 */

/** Two counts over a sliding window: `count` (calls, outcomes) and `marked` (failures, slow calls, retries). */
export class BucketWindow {
  readonly #bucketMs: number;
  readonly #counts: Float64Array;
  readonly #marks: Float64Array;
  /** Slot number (time / bucketMs) of the current bucket; -∞ before the first count. */
  #slot = Number.NEGATIVE_INFINITY;
  /** When the current bucket ends: from then on `#advance` drops the buckets that left. */
  #edge = Number.NEGATIVE_INFINITY;
  /** Index of the current bucket in the ring. */
  #index = 0;
  /** Counts in the window, as of the last `add` or `slide`. */
  count = 0;
  /** Marked counts in the window, as of the last `add` or `slide`. */
  marked = 0;

  constructor(windowMs: number, buckets: number) {
    this.#bucketMs = windowMs / buckets;
    this.#counts = new Float64Array(buckets);
    this.#marks = new Float64Array(buckets);
  }

  /** Adds `count` and `marked` at `now` (milliseconds). A clock that went back counts in the current bucket. */
  add(now: number, count: number, marked: number): void {
    const i = now < this.#edge ? this.#index : this.#advance(now);
    this.#counts[i]! += count;
    this.#marks[i]! += marked;
    this.count += count;
    this.marked += marked;
  }

  /** Slides the window to `now`: `count` and `marked` are then the totals of the last `windowMs`. */
  slide(now: number): void {
    if (now >= this.#edge) this.#advance(now);
  }

  /** Forgets every count. */
  reset(): void {
    this.#counts.fill(0);
    this.#marks.fill(0);
    this.count = 0;
    this.marked = 0;
  }

  /** Moves to the bucket of `now`, dropping those that left the window; returns its index. */
  #advance(now: number): number {
    const n = this.#counts.length;
    const slot = Math.floor(now / this.#bucketMs);
    const stale = Math.min(n, slot - this.#slot);
    for (let s = slot - stale + 1; s <= slot; s++) {
      const i = ((s % n) + n) % n;
      this.count -= this.#counts[i]!;
      this.marked -= this.#marks[i]!;
      this.#counts[i] = 0;
      this.#marks[i] = 0;
    }
    this.#slot = slot;
    this.#edge = (slot + 1) * this.#bucketMs;
    this.#index = ((slot % n) + n) % n;
    return this.#index;
  }
}
