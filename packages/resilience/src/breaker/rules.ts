/*
 * Trip rules: when a closed breaker opens. Each is a small strategy making one counter per breaker;
 * adaptive throttling is the exception, a breaker of its own without open and half-open states.
 */
import { ConfigError } from "@weft/core";
import { numberOption } from "@weft/core/internal";
import { BucketWindow } from "../window.ts";

/** One breaker's count of outcomes while it is closed. */
export interface TripCounter {
  /**
   * Counts one outcome at `now` (milliseconds): whether it failed, and how long it took. True when
   * the breaker must open now.
   */
  record(now: number, failure: boolean, latencyMs: number): boolean;
  /** Forgets every outcome (the breaker closed again). */
  reset(): void;
}

/** A rule that opens a closed breaker: `consecutiveFailures`, `failureRatio` or `slowCallRatio`. */
export interface TripRule {
  readonly kind: "trip";
  /** The rule as a short text, for logs. */
  readonly name: string;
  /**
   * For a slow-call rule, the duration above which a call is slow (milliseconds): a slow half-open
   * probe reopens the breaker as a failed one does. `undefined` otherwise.
   */
  readonly slowCallMs: number | undefined;
  /** A fresh counter, one per breaker. */
  counter(): TripCounter;
}

/** Adaptive client-side throttling (Google SRE): see `adaptiveThrottling`. */
export interface ThrottleRule {
  readonly kind: "throttle";
  readonly name: string;
  /** The multiplier K of accepted calls. */
  readonly k: number;
  readonly windowMs: number;
  readonly buckets: number;
  readonly minRequests: number;
}

/** What a breaker trips on. */
export type BreakerRule = TripRule | ThrottleRule;

/** The rules made here that never read a call's latency: a breaker on them does not time its calls. */
const untimed = new WeakSet<BreakerRule>();

/** True when `rule` may read the latency of a call (a rule made elsewhere is assumed to). */
export function readsLatency(rule: BreakerRule): boolean {
  return !untimed.has(rule);
}

/** Options of `consecutiveFailures`. */
export interface ConsecutiveFailuresOptions {
  /** Failures in a row that open the breaker. Default 5. */
  failures?: number;
}

/** Opens after `failures` failed calls in a row (default 5); a success starts the count again. */
export function consecutiveFailures(options: ConsecutiveFailuresOptions = {}): TripRule {
  const failures = integerOption("failures", options.failures, 5);
  const rule: TripRule = {
    kind: "trip",
    name: `${failures} consecutive failures`,
    slowCallMs: undefined,
    counter() {
      let run = 0;
      return {
        record(_now, failure) {
          run = failure ? run + 1 : 0;
          return run >= failures;
        },
        reset() {
          run = 0;
        },
      };
    },
  };
  untimed.add(rule);
  return rule;
}

/** Options shared by the rules that count over a sliding window. */
export interface WindowOptions {
  /** The window's length in milliseconds. Default 10,000. */
  windowMs?: number;
  /** Buckets the window is divided in (its resolution). Default 10. */
  buckets?: number;
  /** Calls the window must hold before the rule can trip. Default 20. */
  minRequests?: number;
}

/** Options of `failureRatio`. */
export interface FailureRatioOptions extends WindowOptions {
  /** Share of failed calls in the window, in (0, 1], at or above which the breaker opens. Default 0.5. */
  ratio?: number;
}

/**
 * Opens when, over the last `windowMs` (default 10 s, in `buckets` of 10), at least `minRequests`
 * calls were made (default 20) and the share of them that failed is at least `ratio` (default 0.5).
 */
export function failureRatio(options: FailureRatioOptions = {}): TripRule {
  const { windowMs, buckets, minRequests } = windowOptions(options);
  const ratio = ratioOption(options.ratio, 0.5);
  const rule = ratioRule(
    `failure ratio ≥ ${ratio} over ${windowMs} ms`,
    undefined,
    windowMs,
    buckets,
    minRequests,
    ratio,
  );
  untimed.add(rule);
  return rule;
}

/** Options of `slowCallRatio`. */
export interface SlowCallRatioOptions extends WindowOptions {
  /** A call that takes longer than this many milliseconds is slow. Required. */
  slowCallMs: number;
  /** Share of slow calls in the window, in (0, 1], at or above which the breaker opens. Required. */
  ratio: number;
}

/**
 * Opens when, over the last `windowMs` (default 10 s, in `buckets` of 10), at least `minRequests`
 * calls were made (default 20) and the share that took longer than `slowCallMs` is at least `ratio`.
 * "In 1 minute, 30% of calls slower than 1 s" is `slowCallRatio({ windowMs: 60_000, slowCallMs: 1000,
 * ratio: 0.3 })`. A call counts by its duration whether it succeeded or failed; a slow half-open
 * probe reopens the breaker.
 */
export function slowCallRatio(options: SlowCallRatioOptions): TripRule {
  const { windowMs, buckets, minRequests } = windowOptions(options);
  if (options.slowCallMs === undefined)
    throw new ConfigError("slowCallMs", "a number of milliseconds ≥ 0", undefined);
  const slowCallMs = numberOption("slowCallMs", options.slowCallMs, 0, 0);
  const ratio = ratioOption(options.ratio, Number.NaN);
  return ratioRule(
    `${ratio} of calls slower than ${slowCallMs} ms over ${windowMs} ms`,
    slowCallMs,
    windowMs,
    buckets,
    minRequests,
    ratio,
  );
}

function ratioRule(
  name: string,
  slowCallMs: number | undefined,
  windowMs: number,
  buckets: number,
  minRequests: number,
  ratio: number,
): TripRule {
  return {
    kind: "trip",
    name,
    slowCallMs,
    counter() {
      const window = new BucketWindow(windowMs, buckets);
      return {
        record(now, failure, latencyMs) {
          const bad = slowCallMs === undefined ? failure : latencyMs > slowCallMs;
          window.add(now, 1, bad ? 1 : 0);
          return window.count >= minRequests && window.marked >= ratio * window.count;
        },
        reset() {
          window.reset();
        },
      };
    },
  };
}

/** Options of `adaptiveThrottling`. */
export interface AdaptiveThrottlingOptions {
  /** K: how many requests per accepted one may go out before throttling starts. Default 2. */
  k?: number;
  /** The window's length in milliseconds. Default 3,000. */
  windowMs?: number;
  /** Buckets the window is divided in. Default 10. */
  buckets?: number;
  /** Requests the window must hold before any is rejected. Default 20. */
  minRequests?: number;
}

/**
 * Adaptive client-side throttling, from Google's SRE book (as Kratos' `sre` breaker): each call is
 * rejected locally with probability max(0, (requests − K·accepts) / (requests + 1)) over the last
 * `windowMs` (default 3 s of 10 buckets), where `requests` counts every call offered (rejected ones
 * too) and `accepts` those the dependency answered without a failure. K defaults to 2: at a 30%
 * failure rate nothing is rejected; the dependency sees about K times the load it can accept. No open
 * or half-open state: the rejection rate follows the failure rate.
 */
export function adaptiveThrottling(options: AdaptiveThrottlingOptions = {}): ThrottleRule {
  const k = numberOption("k", options.k, 2, 1);
  const { windowMs, buckets, minRequests } = windowOptions({
    windowMs: options.windowMs ?? 3000,
    buckets: options.buckets ?? 10,
    minRequests: options.minRequests ?? 20,
  });
  const rule: ThrottleRule = {
    kind: "throttle",
    name: `adaptive throttling K=${k}`,
    k,
    windowMs,
    buckets,
    minRequests,
  };
  untimed.add(rule);
  return rule;
}

function windowOptions(options: WindowOptions): Required<WindowOptions> {
  const windowMs = numberOption("windowMs", options.windowMs, 10_000, 1);
  const buckets = integerOption("buckets", options.buckets, 10);
  const minRequests = integerOption("minRequests", options.minRequests, 20);
  return { windowMs, buckets, minRequests };
}

/** An integer option ≥ 1, checked. */
export function integerOption(name: string, value: number | undefined, fallback: number): number {
  const n = numberOption(name, value, fallback, 1);
  if (!Number.isInteger(n)) throw new ConfigError(name, "an integer ≥ 1", value);
  return n;
}

function ratioOption(value: number | undefined, fallback: number): number {
  const ratio = value ?? fallback;
  if (typeof ratio !== "number" || !(ratio > 0 && ratio <= 1)) {
    throw new ConfigError("ratio", "a number in (0, 1]", value);
  }
  return ratio;
}
