/*
 * Exponential backoff with jitter, once for everything that retries after a failure: a node's
 * reconnect, a cluster's re-watch of its registry.
 */

/**
 * The wait before retry number `failures` (1 for the first retry): `initialDelayMs × 2^(failures − 1)`,
 * capped at `maxDelayMs`, then spread by ±20 % so clients that failed together do not retry together.
 * Milliseconds. `random` returns a number in [0, 1) (default `Math.random`).
 */
export function backoffDelay(
  failures: number,
  initialDelayMs: number,
  maxDelayMs: number,
  random: () => number = Math.random,
): number {
  const delay = Math.min(maxDelayMs, initialDelayMs * 2 ** Math.max(0, failures - 1));
  return delay * (0.8 + random() * 0.4);
}
