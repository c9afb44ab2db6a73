/*
 * @weft/resilience-redis: distributed rate limiters on Redis.
 */
export {};
