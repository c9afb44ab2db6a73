/*
 * @weft/resilience: every policy is an `Interceptor` (the core's one type) with a small options object.
 */
// timeouts, retries, retry budget, hedging
export { type RetryBudget, type RetryBudgetOptions, retryBudget } from "./budget.ts";
export { type HedgeOptions, hedge } from "./hedge.ts";
export type { PerMethod } from "./per-method.ts";
export { RETRIED_KEY, RETRY_AFTER_KEY, type RetryOptions, retry } from "./retry.ts";
export { type TimeoutOptions, timeout } from "./timeout.ts";
