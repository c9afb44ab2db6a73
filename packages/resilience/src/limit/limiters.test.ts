import { ConfigError } from "@weft/core";
import { describe, expect, it } from "vitest";
import { leakyBucket } from "./leaky-bucket.ts";
import type { Acquisition, Limiter } from "./limiter.ts";
import { slidingWindowLog } from "./sliding-log.ts";
import { tokenBucket } from "./token-bucket.ts";
import { fixedWindow, slidingWindowCounter } from "./window-counter.ts";

function clock(start = 1_000_000) {
  const c = { t: start, now: () => c.t };
  return c;
}

/** How many of `n` single-permit requests `limiter` grants for `key` right now. */
function grants(limiter: Limiter, n: number, key = "k"): number {
  let ok = 0;
  for (let i = 0; i < n; i++) if ((limiter.tryAcquire(key) as Acquisition).ok) ok++;
  return ok;
}

const acquire = (l: Limiter, key = "k", permits = 1) => l.tryAcquire(key, permits) as Acquisition;

describe("tokenBucket", () => {
  it("grants a full burst, then exactly the refill", () => {
    const c = clock();
    const l = tokenBucket({ ratePerSecond: 10, capacity: 5, now: c.now });
    expect(grants(l, 8)).toBe(5);
    expect(acquire(l)).toEqual({ ok: false, retryAfterMs: 100 });
    c.t += 99;
    expect(acquire(l).ok).toBe(false);
    c.t += 1; // 100 ms: exactly one token
    expect(grants(l, 3)).toBe(1);
    c.t += 10_000; // never more than the capacity
    expect(grants(l, 10)).toBe(5);
  });

  it("keeps keys apart, takes several permits, and refuses permits over the capacity", () => {
    const c = clock();
    const l = tokenBucket({ ratePerSecond: 2, capacity: 4, now: c.now });
    expect(acquire(l, "a", 3).ok).toBe(true);
    expect(acquire(l, "a", 2)).toEqual({ ok: false, retryAfterMs: 500 });
    expect(acquire(l, "b", 4).ok).toBe(true);
    expect(() => l.tryAcquire("a", 5)).toThrow(RangeError);
  });

  it("rejects bad options naming them", () => {
    expect(() => tokenBucket({ ratePerSecond: 0 })).toThrow(ConfigError);
    expect(() => tokenBucket({ ratePerSecond: 1, capacity: -1 })).toThrow(/"capacity"/);
    expect(() => tokenBucket({ ratePerSecond: 1, maxKeys: 0 })).toThrow(/"maxKeys"/);
  });

  it("forgets the least recently used key beyond maxKeys", () => {
    const c = clock();
    const l = tokenBucket({ ratePerSecond: 1, capacity: 1, now: c.now, maxKeys: 2 });
    expect(acquire(l, "a").ok).toBe(true);
    expect(acquire(l, "b").ok).toBe(true);
    expect(acquire(l, "a").ok).toBe(false); // a is now the most recent
    expect(acquire(l, "c").ok).toBe(true); // evicts b
    expect(acquire(l, "b").ok).toBe(true); // b starts afresh (evicts a)
    expect(acquire(l, "c").ok).toBe(false);
  });
});

describe("leakyBucket", () => {
  it("queues up to maxWaitMs, paced at the rate, and refuses beyond", () => {
    const c = clock();
    const l = leakyBucket({ ratePerSecond: 10, maxWaitMs: 300, now: c.now });
    const delays = [0, 1, 2, 3].map(() => acquire(l));
    expect(delays.map((a) => a.delayMs)).toEqual([0, 100, 200, 300]);
    expect(acquire(l)).toEqual({ ok: false, retryAfterMs: 100 });
    c.t += 100; // one left: the next waits 300 ms again
    expect(acquire(l).delayMs).toBe(300);
    expect(acquire(l).ok).toBe(false);
  });

  it("without maxWaitMs grants only a request whose turn has come", () => {
    const c = clock();
    const l = leakyBucket({ ratePerSecond: 4, now: c.now });
    expect(grants(l, 3)).toBe(1);
    c.t += 249;
    expect(acquire(l)).toEqual({ ok: false, retryAfterMs: 1 });
    c.t += 1;
    expect(grants(l, 3)).toBe(1);
    // over 10 s exactly 40 more
    let ok = 0;
    for (let i = 0; i < 1000; i++) {
      c.t += 10;
      ok += grants(l, 1);
    }
    expect(ok).toBe(40);
  });
});

describe("fixedWindow", () => {
  it("counts exactly per window, resetting at the edge", () => {
    const c = clock(0);
    const l = fixedWindow({ limit: 3, windowMs: 1000, now: c.now });
    c.t = 999;
    expect(grants(l, 5)).toBe(3);
    expect(acquire(l)).toEqual({ ok: false, retryAfterMs: 1 });
    c.t = 1000;
    expect(grants(l, 5)).toBe(3);
    c.t = 1999;
    expect(grants(l, 1)).toBe(0);
    c.t = 2000;
    expect(acquire(l, "k", 3).ok).toBe(true);
    expect(() => l.tryAcquire("k", 4)).toThrow(RangeError);
    expect(() => fixedWindow({ limit: 1.5, windowMs: 1 })).toThrow(/"limit"/);
  });
});

describe("slidingWindowLog", () => {
  it("grants exactly `limit` in any window, each permit expiring windowMs after it", () => {
    const c = clock(0);
    const l = slidingWindowLog({ limit: 3, windowMs: 1000, now: c.now });
    c.t = 0;
    expect(grants(l, 1)).toBe(1);
    c.t = 500;
    expect(grants(l, 5)).toBe(2);
    expect(acquire(l)).toEqual({ ok: false, retryAfterMs: 500 });
    c.t = 999;
    expect(grants(l, 1)).toBe(0);
    c.t = 1000; // the permit of t=0 expires
    expect(grants(l, 5)).toBe(1);
    expect(acquire(l, "k", 2)).toEqual({ ok: false, retryAfterMs: 500 });
    c.t = 1500;
    expect(grants(l, 5)).toBe(2);
  });

  it("never grants more than the limit in any sliding window over a long random run", () => {
    const c = clock(0);
    const l = slidingWindowLog({ limit: 20, windowMs: 100, now: c.now });
    const granted: number[] = [];
    for (let i = 0; i < 5000; i++) {
      c.t += i % 7;
      if (acquire(l).ok) granted.push(c.t);
    }
    let minSpan = Number.POSITIVE_INFINITY;
    for (let i = 20; i < granted.length; i++) minSpan = Math.min(minSpan, granted[i]! - granted[i - 20]!);
    expect(minSpan).toBeGreaterThanOrEqual(100);
    expect(granted.length).toBeGreaterThan(1000);
  });
});

describe("slidingWindowCounter", () => {
  it("weights the previous window by the part still inside the sliding window", () => {
    const c = clock(0);
    const l = slidingWindowCounter({ limit: 10, windowMs: 1000, now: c.now });
    c.t = 500;
    expect(grants(l, 20)).toBe(10);
    c.t = 1000; // previous 10 × 1.0: nothing
    expect(grants(l, 1)).toBe(0);
    c.t = 1250; // 10 × 0.75 = 7.5: 2 fit
    expect(grants(l, 5)).toBe(2);
    expect(acquire(l)).toEqual({ ok: false, retryAfterMs: 50 }); // 7.5+2+1-10 = 0.5 → 0.5×1000/10
    c.t = 1300; // 7 + 2 + 1 = 10
    expect(grants(l, 5)).toBe(1);
    c.t = 2000; // previous 3 × 1.0
    expect(grants(l, 10)).toBe(7);
    c.t = 4000; // two windows later: nothing carried over
    expect(grants(l, 20)).toBe(10);
  });
});
