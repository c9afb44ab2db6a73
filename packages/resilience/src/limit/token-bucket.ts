import {
  type Acquisition,
  checkPermits,
  clockOption,
  GRANTED,
  KeyedState,
  type Limiter,
  type LocalLimiterOptions,
  positiveOption,
  refused,
} from "./limiter.ts";

/** Options of `tokenBucket`. */
export interface TokenBucketOptions extends LocalLimiterOptions {
  /** Tokens added per second, continuously (the sustained rate). Required, > 0. */
  ratePerSecond: number;
  /** Tokens the bucket holds (the burst); a new key starts full. Default: `ratePerSecond`. */
  capacity?: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * A token bucket per key: `capacity` tokens, refilled at `ratePerSecond`; a request takes `permits`
 * tokens or is refused with the time until enough have been refilled. Allows bursts up to
 * `capacity`, then `ratePerSecond` on average.
 */
export function tokenBucket(options: TokenBucketOptions): Limiter {
  const rate = positiveOption("ratePerSecond", options.ratePerSecond);
  const capacity = positiveOption("capacity", options.capacity, rate);
  const now = clockOption(options.now);
  const perMs = rate / 1000;
  const buckets = new KeyedState<Bucket>(options, () => ({ tokens: capacity, at: now() }));
  return {
    tryAcquire(key: string, permits = 1): Acquisition {
      checkPermits(permits, capacity);
      const b = buckets.get(key);
      const t = now();
      if (t > b.at) {
        b.tokens = Math.min(capacity, b.tokens + (t - b.at) * perMs);
        b.at = t;
      }
      if (b.tokens >= permits) {
        b.tokens -= permits;
        return GRANTED;
      }
      return refused((permits - b.tokens) / perMs);
    },
  };
}
