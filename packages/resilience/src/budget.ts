/*
 * The retry budget: retries are allowed while they stay under a ratio of the requests seen over a
 * sliding window, plus a small floor per second, so a failing dependency receives at most
 * (1 + ratio) times its normal load, not maxAttempts times.
 */
import { ConfigError } from "@weft/core";

/** Options of `retryBudget`. */
export interface RetryBudgetOptions {
  /** Retries allowed per request over the window. Default 0.1 (10%). */
  readonly ratio?: number;
  /** Retries allowed per second of the window whatever the traffic, so a quiet client can still retry. Default 1. */
  readonly minRetriesPerSecond?: number;
  /** Length of the sliding window in milliseconds, kept as 10 buckets. Default 10,000. */
  readonly windowMs?: number;
  /** The clock, in milliseconds (for tests). Default `Date.now`. */
  readonly now?: () => number;
}

/**
 * A retry budget, shared by every retry policy given it (one per client by default). Over the last
 * `windowMs`, a retry is allowed while `retries < ratio × requests + minRetriesPerSecond × windowMs / 1000`.
 */
export interface RetryBudget {
  /** Counts one call as it starts (its retries are not calls). */
  recordRequest(): void;
  /** Counts a retry and returns `true` when the budget allows one; `false` (nothing counted) when spent. */
  tryRetry(): boolean;
  /** Calls counted in the current window. */
  readonly requests: number;
  /** Retries counted in the current window. */
  readonly retries: number;
}

const BUCKETS = 10;

/** Creates a retry budget (see `RetryBudget`); bad options throw a `ConfigError` naming them. */
export function retryBudget(options: RetryBudgetOptions = {}): RetryBudget {
  const ratio = options.ratio ?? 0.1;
  if (!(ratio >= 0) || !Number.isFinite(ratio)) throw new ConfigError("ratio", "a number ≥ 0", ratio);
  const floor = options.minRetriesPerSecond ?? 1;
  if (!(floor >= 0) || !Number.isFinite(floor)) {
    throw new ConfigError("minRetriesPerSecond", "a number ≥ 0", floor);
  }
  const windowMs = options.windowMs ?? 10_000;
  if (!(windowMs >= BUCKETS) || !Number.isFinite(windowMs)) {
    throw new ConfigError("windowMs", `a number of milliseconds ≥ ${BUCKETS}`, windowMs);
  }
  const now = options.now ?? Date.now;
  if (typeof now !== "function") throw new ConfigError("now", "a function returning milliseconds", now);
  return new SlidingBudget(ratio, (floor * windowMs) / 1000, windowMs / BUCKETS, now);
}

class SlidingBudget implements RetryBudget {
  readonly #ratio: number;
  readonly #floor: number;
  readonly #bucketMs: number;
  readonly #now: () => number;
  readonly #requests = new Float64Array(BUCKETS);
  readonly #retries = new Float64Array(BUCKETS);
  /** Index (time / bucketMs) of the newest bucket. */
  #head = Number.NEGATIVE_INFINITY;
  #requestTotal = 0;
  #retryTotal = 0;

  constructor(ratio: number, floor: number, bucketMs: number, now: () => number) {
    this.#ratio = ratio;
    this.#floor = floor;
    this.#bucketMs = bucketMs;
    this.#now = now;
  }

  get requests(): number {
    this.#advance();
    return this.#requestTotal;
  }

  get retries(): number {
    this.#advance();
    return this.#retryTotal;
  }

  recordRequest(): void {
    this.#requests[this.#advance()]!++;
    this.#requestTotal++;
  }

  tryRetry(): boolean {
    const slot = this.#advance();
    if (this.#retryTotal + 1 > this.#ratio * this.#requestTotal + this.#floor) return false;
    this.#retries[slot]!++;
    this.#retryTotal++;
    return true;
  }

  /** Drops the buckets that left the window; returns the slot of the current one. */
  #advance(): number {
    const index = Math.floor(this.#now() / this.#bucketMs);
    if (index > this.#head) {
      const stale = Math.min(BUCKETS, index - this.#head);
      for (let i = 1; i <= stale; i++) {
        const slot = (((index - stale + i) % BUCKETS) + BUCKETS) % BUCKETS;
        this.#requestTotal -= this.#requests[slot]!;
        this.#retryTotal -= this.#retries[slot]!;
        this.#requests[slot] = 0;
        this.#retries[slot] = 0;
      }
      this.#head = index;
    }
    return ((index % BUCKETS) + BUCKETS) % BUCKETS;
  }
}
