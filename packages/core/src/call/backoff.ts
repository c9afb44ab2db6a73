/*
 * Exponential backoff with jitter, once for everything that waits before trying again (a node's
 * reconnects, a cluster's background resends).
 */

/** The delays of a backoff, in milliseconds. */
export interface BackoffOptions {
  /** The wait after the first failure. */
  readonly initialDelayMs: number;
  /** The longest wait before jitter; the doubling stops there. */
  readonly maxDelayMs: number;
}

/**
 * The wait after the `failures`-th failure in a row (1 for the first): `initialDelayMs` doubled per
 * failure, capped at `maxDelayMs`, then spread by ±20% jitter (`random` returns a number in [0, 1);
 * 0.5 gives the delay without jitter).
 */
export function backoffDelay(
  failures: number,
  options: BackoffOptions,
  random: () => number = Math.random,
): number {
  const delay = Math.min(options.maxDelayMs, options.initialDelayMs * 2 ** (failures - 1));
  return delay * (0.8 + random() * 0.4);
}
