/*
 * @weft/resilience: every policy is an `Interceptor` (the core's one type) with a small options object.
 */
export {};
