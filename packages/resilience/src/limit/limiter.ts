/*
 * The rate limiter interface every algorithm implements, the options they share, and the per-key
 * state they keep.
 */
import { ConfigError } from "@weft/core";

/** A limiter's answer to one request for permits. */
export interface Acquisition {
  /** Whether the permits were granted. */
  readonly ok: boolean;
  /** Refused: milliseconds until the same request could be granted (a hint, ≥ 1). Granted: 0. */
  readonly retryAfterMs: number;
  /**
   * Granted by a queueing limiter (the leaky bucket): milliseconds the caller must wait before it
   * proceeds, so calls leave at the limiter's pace. 0 (or absent) for the others.
   */
  readonly delayMs?: number;
}

/**
 * A rate limiter: grants or refuses `permits` (default 1) for `key` (a method, a caller, …), each
 * key limited on its own. Local limiters answer synchronously; distributed ones (Redis) return a
 * promise. A limiter never waits: a queueing one says how long to wait in `delayMs`.
 */
export interface Limiter {
  tryAcquire(key: string, permits?: number): Acquisition | Promise<Acquisition>;
}

/** Options every local limiter takes. */
export interface LocalLimiterOptions {
  /** The clock, in milliseconds. Default: `Date.now`. Inject one for tests. */
  now?: () => number;
  /**
   * Keys whose state is kept at once; beyond it the least recently used key is forgotten (its next
   * request starts afresh). Default: 10,000.
   */
  maxKeys?: number;
}

/** The one granted answer without a delay: shared, so a granted call allocates nothing. */
export const GRANTED: Acquisition = Object.freeze({ ok: true, retryAfterMs: 0, delayMs: 0 });

/** A refusal with `retryAfterMs` rounded up to a whole millisecond, at least 1. */
export function refused(retryAfterMs: number): Acquisition {
  return { ok: false, retryAfterMs: Math.max(1, Math.ceil(retryAfterMs)) };
}

/** A number option that must be finite and > 0 (or ≥ 0 with `allowZero`); `fallback` when absent. */
export function positiveOption(option: string, v: unknown, fallback?: number, allowZero = false): number {
  if (v === undefined && fallback !== undefined) return fallback;
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0 || (v === 0 && !allowZero)) {
    throw new ConfigError(option, allowZero ? "a finite number ≥ 0" : "a finite number > 0", v);
  }
  return v;
}

/** The `limit` option of the window limiters: an integer ≥ 1. */
export function integerLimit(v: unknown): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 1)
    throw new ConfigError("limit", "an integer ≥ 1", v);
  return v;
}

/** The `permits` argument: a positive integer, at most `max` (a request no limiter could ever grant). */
export function checkPermits(permits: number, max: number): number {
  if (!Number.isSafeInteger(permits) || permits < 1 || permits > max) {
    throw new RangeError(`permits must be an integer from 1 to ${max}, got ${permits}`);
  }
  return permits;
}

/**
 * Per-key state of a local limiter, least recently used first, bounded by `maxKeys` (the oldest
 * key is forgotten when a new one would exceed it).
 */
export class KeyedState<S> {
  readonly #states = new Map<string, S>();
  readonly #maxKeys: number;
  readonly #create: () => S;

  constructor(options: LocalLimiterOptions, create: () => S) {
    const maxKeys = options.maxKeys ?? 10_000;
    if (!Number.isSafeInteger(maxKeys) || maxKeys < 1) {
      throw new ConfigError("maxKeys", "an integer ≥ 1", options.maxKeys);
    }
    this.#maxKeys = maxKeys;
    this.#create = create;
  }

  /** The state of `key`, created when new; marks it most recently used. */
  get(key: string): S {
    const states = this.#states;
    let state = states.get(key);
    if (state === undefined) {
      if (states.size >= this.#maxKeys) states.delete(states.keys().next().value as string);
      state = this.#create();
    } else {
      states.delete(key);
    }
    states.set(key, state);
    return state;
  }

  /** How many keys are kept. */
  get size(): number {
    return this.#states.size;
  }
}

/** The clock option: `Date.now` by default, else a function. */
export function clockOption(now: unknown): () => number {
  if (now === undefined) return Date.now;
  if (typeof now !== "function") throw new ConfigError("now", "a function returning milliseconds", now);
  return now as () => number;
}
