/*
 * @weft/resilience: every policy is an `Interceptor` (the core's one type) with a small options object.
 */

// circuit breakers, fallbacks and degradation
export type { BreakerOptions, BreakerState } from "./breaker/breaker.ts";
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
