/*
 * @weft/resilience: every policy is an `Interceptor` (the core's one type) with a small options object.
 */

// circuit breakers, fallbacks and degradation
export { type BreakerOptions, type BreakerState, isBreakerFailure } from "./breaker/breaker.ts";
export { instanceBreakers } from "./breaker/instances.ts";
export { type CircuitBreakerOptions, circuitBreaker } from "./breaker/interceptor.ts";
export {
  type AdaptiveThrottlingOptions,
  adaptiveThrottling,
  type BreakerRule,
  type ConsecutiveFailuresOptions,
  consecutiveFailures,
  type FailureRatioOptions,
  failureRatio,
  type SlowCallRatioOptions,
  slowCallRatio,
  type ThrottleRule,
  type TripCounter,
  type TripRule,
  type WindowOptions,
} from "./breaker/rules.ts";
// timeouts, retries, retry budget, hedging
export { type RetryBudget, type RetryBudgetOptions, retryBudget } from "./budget.ts";
// --- rate limiters, bulkheads, load shedding ---
export { type BulkheadOptions, bulkhead } from "./bulkhead.ts";
export {
  type Degradable,
  type DegradableOptions,
  type DegradationSwitch,
  type DegradedHandler,
  degradable,
  degradationSwitch,
  type FallbackOptions,
  fallback,
} from "./fallback.ts";
export { type HedgeOptions, hedge } from "./hedge.ts";
export { type LeakyBucketOptions, leakyBucket } from "./limit/leaky-bucket.ts";
export type { Acquisition, Limiter, LocalLimiterOptions } from "./limit/limiter.ts";
export {
  callerKey,
  methodKey,
  type RateLimitOptions,
  RETRY_AFTER_MS,
  rateLimit,
  rateLimited,
} from "./limit/rate-limit.ts";
export { slidingWindowLog } from "./limit/sliding-log.ts";
export { type TokenBucketOptions, tokenBucket } from "./limit/token-bucket.ts";
export {
  type FixedWindowOptions,
  fixedWindow,
  type SlidingWindowOptions,
  slidingWindowCounter,
} from "./limit/window-counter.ts";
export type { PerMethod } from "./per-method.ts";
export { RETRIED_KEY, RETRY_AFTER_KEY, type RetryOptions, retry } from "./retry.ts";
export { type LoadSource, type ProcessLoadOptions, processLoad } from "./shed/load.ts";
export {
  PRIORITY_HEADER,
  type Shedder,
  type ShedderOptions,
  type ShedStats,
  shedder,
} from "./shed/shedder.ts";
export { type TimeoutOptions, timeout } from "./timeout.ts";
