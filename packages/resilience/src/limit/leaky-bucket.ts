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

/** Options of `leakyBucket`. */
export interface LeakyBucketOptions extends LocalLimiterOptions {
  /** Permits that leave per second, evenly spaced. Required, > 0. */
  ratePerSecond: number;
  /**
   * Longest a granted request may be told to wait for its turn, in milliseconds; a request whose
   * turn is further away is refused. 0 admits only a request whose turn has come. Default: 0.
   */
  maxWaitMs?: number;
}

interface Queue {
  /** When the next permit may leave: the end of the queue. */
  next: number;
}

/**
 * A leaky bucket used as a queue, per key: permits leave evenly at `ratePerSecond`, one every
 * `1000 / ratePerSecond` ms. A request is granted with `delayMs`, the wait for its turn, while that
 * wait is at most `maxWaitMs`, else refused with the time until it would be. Smooths bursts into a
 * steady pace instead of refusing them; at most `maxWaitMs × ratePerSecond / 1000` permits queue.
 */
export function leakyBucket(options: LeakyBucketOptions): Limiter {
  const rate = positiveOption("ratePerSecond", options.ratePerSecond);
  const maxWaitMs = positiveOption("maxWaitMs", options.maxWaitMs, 0, true);
  const now = clockOption(options.now);
  const interval = 1000 / rate;
  const queues = new KeyedState<Queue>(options, () => ({ next: Number.NEGATIVE_INFINITY }));
  return {
    tryAcquire(key: string, permits = 1): Acquisition {
      checkPermits(permits, Number.MAX_SAFE_INTEGER);
      const q = queues.get(key);
      const t = now();
      const start = Math.max(t, q.next);
      const wait = start - t;
      if (wait > maxWaitMs) return refused(wait - maxWaitMs);
      q.next = start + permits * interval;
      return wait === 0 ? GRANTED : { ok: true, retryAfterMs: 0, delayMs: wait };
    },
  };
}
