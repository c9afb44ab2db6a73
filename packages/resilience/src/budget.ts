/*
 * The retry budget: retries are allowed while they stay under a ratio of the requests seen over a
 * sliding window, plus a small floor per second, so a failing dependency receives at most
 * (1 + ratio) times its normal load, not maxAttempts times.
 */
import { ConfigError } from "@weft/core";
import { coarseNow } from "@weft/core/internal";
import { BucketWindow } from "./window.ts";

/** Options of `retryBudget`. */
export interface RetryBudgetOptions {
  /** Retries allowed per request over the window. Default 0.1 (10%). */
  readonly ratio?: number;
  /** Retries allowed per second of the window whatever the traffic, so a quiet client can still retry. Default 1. */
  readonly minRetriesPerSecond?: number;
  /** Length of the sliding window in milliseconds, kept as 10 buckets. Default 10,000. */
  readonly windowMs?: number;
  /**
   * The clock, in milliseconds (for tests). Default: core's coarse monotonic clock (`performance.now`
   * read at most once per 10 ms), so counting a request reads no clock.
   */
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
  const now = options.now ?? coarseNow;
  if (typeof now !== "function") throw new ConfigError("now", "a function returning milliseconds", now);
  return new SlidingBudget(ratio, (floor * windowMs) / 1000, windowMs, now);
}

/** Requests are the window's counts, retries its marks. */
class SlidingBudget implements RetryBudget {
  readonly #ratio: number;
  readonly #floor: number;
  readonly #now: () => number;
  readonly #window: BucketWindow;

  constructor(ratio: number, floor: number, windowMs: number, now: () => number) {
    this.#ratio = ratio;
    this.#floor = floor;
    this.#now = now;
    this.#window = new BucketWindow(windowMs, BUCKETS);
  }

  get requests(): number {
    this.#window.slide(this.#now());
    return this.#window.count;
  }

  get retries(): number {
    this.#window.slide(this.#now());
    return this.#window.marked;
  }

  recordRequest(): void {
    this.#window.add(this.#now(), 1, 0);
  }

  tryRetry(): boolean {
    const window = this.#window;
    const now = this.#now();
    window.slide(now);
    if (window.marked + 1 > this.#ratio * window.count + this.#floor) return false;
    window.add(now, 0, 1);
    return true;
  }
}
