import {
  type Acquisition,
  checkPermits,
  clockOption,
  GRANTED,
  integerLimit,
  KeyedState,
  type Limiter,
  positiveOption,
  refused,
} from "./limiter.ts";
import type { SlidingWindowOptions } from "./window-counter.ts";

interface Log {
  /** The time of each granted permit, oldest first, from `head` on. */
  times: number[];
  head: number;
}

/**
 * A sliding-window log per key: the time of every granted permit is kept, and a request is granted
 * while fewer than `limit` permits were granted in the last `windowMs` (a permit granted at `t`
 * counts until `t + windowMs`, excluded). Exact, at the cost of `limit` timestamps per key.
 */
export function slidingWindowLog(options: SlidingWindowOptions): Limiter {
  const limit = integerLimit(options.limit);
  const windowMs = positiveOption("windowMs", options.windowMs);
  const now = clockOption(options.now);
  const logs = new KeyedState<Log>(options, () => ({ times: [], head: 0 }));
  return {
    tryAcquire(key: string, permits = 1): Acquisition {
      checkPermits(permits, limit);
      const log = logs.get(key);
      const t = now();
      const times = log.times;
      let head = log.head;
      while (head < times.length && times[head]! <= t - windowMs) head++;
      if (head > 64 && head * 2 > times.length) {
        times.splice(0, head);
        head = 0;
      }
      log.head = head;
      const used = times.length - head;
      if (used + permits <= limit) {
        for (let i = 0; i < permits; i++) times.push(t);
        return GRANTED;
      }
      // enough room once the permit `used + permits - limit` places from the oldest has expired
      return refused(times[head + used + permits - limit - 1]! + windowMs - t);
    },
  };
}
