import {
  type Acquisition,
  checkPermits,
  clockOption,
  GRANTED,
  integerLimit,
  KeyedState,
  type Limiter,
  type LocalLimiterOptions,
  positiveOption,
  refused,
} from "./limiter.ts";

/** Options of `fixedWindow`. */
export interface FixedWindowOptions extends LocalLimiterOptions {
  /** Permits per window. Required, an integer ≥ 1. */
  limit: number;
  /** The window's length in milliseconds; windows start at multiples of it on the clock. Required. */
  windowMs: number;
}

/** Options of `slidingWindowCounter` (and `slidingWindowLog`): as a fixed window's. */
export type SlidingWindowOptions = FixedWindowOptions;

/**
 * A fixed-window counter per key: at most `limit` permits in each window `[k × windowMs, (k+1) ×
 * windowMs)`. Cheapest of all, but allows up to `2 × limit` across a window edge.
 */
export function fixedWindow(options: FixedWindowOptions): Limiter {
  return windowCounter(options, false);
}

/**
 * A sliding-window counter per key (Cloudflare's approximation): counts per fixed window, and a
 * request is granted while `previous × (1 − elapsed / windowMs) + current + permits ≤ limit`, where
 * `elapsed` is the time since the current window began. Two numbers per key; exact when traffic is
 * even over the previous window, and never more than `limit` in a fixed window.
 */
export function slidingWindowCounter(options: SlidingWindowOptions): Limiter {
  return windowCounter(options, true);
}

interface Counter {
  start: number;
  current: number;
  previous: number;
}

/** Both counters: `slide` weighs in the previous window, else each window stands alone. */
function windowCounter(options: FixedWindowOptions, slide: boolean): Limiter {
  const limit = integerLimit(options.limit);
  const windowMs = positiveOption("windowMs", options.windowMs);
  const now = clockOption(options.now);
  const counters = new KeyedState<Counter>(options, () => ({
    start: Number.NEGATIVE_INFINITY,
    current: 0,
    previous: 0,
  }));
  return {
    tryAcquire(key: string, permits = 1): Acquisition {
      checkPermits(permits, limit);
      const c = counters.get(key);
      const t = now();
      const start = Math.floor(t / windowMs) * windowMs;
      if (start !== c.start) {
        c.previous = slide && start - c.start === windowMs ? c.current : 0;
        c.current = 0;
        c.start = start;
      }
      const elapsed = t - start;
      const weighted = c.previous * (1 - elapsed / windowMs);
      const over = weighted + c.current + permits - limit;
      if (over <= 0) {
        c.current += permits;
        return GRANTED;
      }
      const untilNext = windowMs - elapsed;
      // the previous window's share shrinks by previous / windowMs per ms until this window ends
      if (c.previous > 0 && c.current + permits <= limit) {
        return refused(Math.min(untilNext, (over * windowMs) / c.previous));
      }
      return refused(untilNext);
    },
  };
}
