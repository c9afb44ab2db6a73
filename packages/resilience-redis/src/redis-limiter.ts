import { createHash, randomBytes } from "node:crypto";
import { ConfigError, type Logger, SILENT_LOGGER, type Telemetry } from "@weft/core";
import { emit, telemetryOption } from "@weft/core/internal";
import { type Acquisition, type Limiter, slidingWindowLog, tokenBucket } from "@weft/resilience";
import type { Redis } from "ioredis";
import { SLIDING_WINDOW, TOKEN_BUCKET } from "./scripts.ts";

/** Options every Redis limiter takes. */
export interface RedisLimiterOptions {
  /**
   * The client, owned by the caller (the limiter never closes it). Make it with
   * `enableOfflineQueue: false` and a `commandTimeout` (e.g. 100 ms) so that a request never waits
   * for a Redis that is down: the limiter answers from its fallback instead.
   */
  redis: Redis;
  /** Prefix of the limiter's keys in Redis. Default: `"weft:ratelimit:"`. */
  prefix?: string;
  /**
   * The limiter used while Redis is unreachable. Default: the same algorithm and limits, local to
   * this process (so N processes admit up to N × the limit during an outage).
   */
  fallback?: Limiter;
  /** While on the fallback, how often Redis is tried again, in milliseconds. Default: 1000. */
  probeIntervalMs?: number;
  /** Told once when Redis becomes unreachable (`warn`) and once when it is back (`info`). Default: silent. */
  logger?: Logger;
  /** Told of each switch (`ratelimit.fallback`). Default: none. */
  telemetry?: Telemetry | undefined;
  /**
   * The clock, in milliseconds, sent to Redis with each request. Default: none, Redis's own `TIME`,
   * one clock for every process. Inject one for tests.
   */
  now?: () => number;
}

/** Options of `redisTokenBucket`. */
export interface RedisTokenBucketOptions extends RedisLimiterOptions {
  /** Tokens added per second (the sustained rate). Required, > 0. */
  ratePerSecond: number;
  /** Tokens the bucket holds (the burst). Default: `ratePerSecond`. */
  capacity?: number;
}

/** Options of `redisSlidingWindow`. */
export interface RedisSlidingWindowOptions extends RedisLimiterOptions {
  /** Permits in any window of `windowMs`. Required, an integer ≥ 1. */
  limit: number;
  /** The window's length in milliseconds. Required. */
  windowMs: number;
}

/**
 * A token bucket shared by every process through Redis: one atomic Lua script per request (a hash
 * per key holding the tokens and the time of the last refill). Semantics as `tokenBucket` of
 * `@weft/resilience`. While Redis is unreachable it answers from `fallback`.
 */
export function redisTokenBucket(options: RedisTokenBucketOptions): Limiter {
  const rate = positive("ratePerSecond", options.ratePerSecond);
  const capacity = options.capacity === undefined ? rate : positive("capacity", options.capacity);
  const fallback = options.fallback ?? tokenBucket({ ratePerSecond: rate, capacity });
  return new RedisLimiter(options, TOKEN_BUCKET, fallback, capacity, [String(rate / 1000), String(capacity)]);
}

/**
 * A sliding-window log shared by every process through Redis: a sorted set per key holds the time of
 * each granted permit, and one atomic Lua script drops the expired ones, counts and adds. Exact, like
 * `slidingWindowLog` of `@weft/resilience`. While Redis is unreachable it answers from `fallback`.
 */
export function redisSlidingWindow(options: RedisSlidingWindowOptions): Limiter {
  const limit = options.limit;
  if (typeof limit !== "number" || !Number.isSafeInteger(limit) || limit < 1) {
    throw new ConfigError("limit", "an integer ≥ 1", limit);
  }
  const windowMs = positive("windowMs", options.windowMs);
  const fallback = options.fallback ?? slidingWindowLog({ limit, windowMs });
  return new RedisLimiter(options, SLIDING_WINDOW, fallback, limit, [String(limit), String(windowMs)], true);
}

function positive(option: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isFinite(v) || v <= 0)
    throw new ConfigError(option, "a finite number > 0", v);
  return v;
}

/** Unique request ids across processes: a random prefix and a counter. */
const idPrefix = randomBytes(6).toString("base64url");
let ids = 0;

class RedisLimiter implements Limiter {
  readonly #redis: Redis;
  readonly #script: string;
  readonly #sha: string;
  readonly #args: readonly string[];
  readonly #withId: boolean;
  readonly #maxPermits: number;
  readonly #prefix: string;
  readonly #fallback: Limiter;
  readonly #probeIntervalMs: number;
  readonly #logger: Logger;
  readonly #telemetry: Telemetry | undefined;
  readonly #now: (() => number) | undefined;
  /** Since when Redis failed, while on the fallback; `undefined` while on Redis. */
  #failedAt: number | undefined = undefined;

  constructor(
    options: RedisLimiterOptions,
    script: string,
    fallback: Limiter,
    maxPermits: number,
    args: readonly string[],
    withId = false,
  ) {
    const redis = options.redis;
    if (redis === null || typeof redis !== "object" || typeof redis.evalsha !== "function") {
      throw new ConfigError("redis", "an ioredis client", redis);
    }
    this.#redis = redis;
    this.#script = script;
    this.#sha = createHash("sha1").update(script).digest("hex");
    this.#args = args;
    this.#withId = withId;
    this.#maxPermits = maxPermits;
    this.#prefix = options.prefix ?? "weft:ratelimit:";
    this.#fallback = fallback;
    this.#probeIntervalMs = options.probeIntervalMs ?? 1000;
    if (!(this.#probeIntervalMs >= 0)) {
      throw new ConfigError("probeIntervalMs", "a number of milliseconds ≥ 0", options.probeIntervalMs);
    }
    this.#logger = options.logger ?? SILENT_LOGGER;
    this.#telemetry = telemetryOption(options.telemetry);
    this.#now = options.now;
  }

  /** Whether it currently answers from its fallback. */
  get degraded(): boolean {
    return this.#failedAt !== undefined;
  }

  tryAcquire(key: string, permits = 1): Promise<Acquisition> | Acquisition {
    if (!Number.isSafeInteger(permits) || permits < 1 || permits > this.#maxPermits) {
      throw new RangeError(`permits must be an integer from 1 to ${this.#maxPermits}, got ${permits}`);
    }
    const failedAt = this.#failedAt;
    if (
      failedAt !== undefined &&
      (this.#redis.status !== "ready" || Date.now() - failedAt < this.#probeIntervalMs)
    ) {
      return this.#fallback.tryAcquire(key, permits);
    }
    return this.#remote(key, permits);
  }

  async #remote(key: string, permits: number): Promise<Acquisition> {
    const args = [...this.#args, String(permits), String(this.#now === undefined ? -1 : this.#now())];
    if (this.#withId) args.push(`${idPrefix}:${ids++}`);
    const k = this.#prefix + key;
    let reply: unknown;
    try {
      try {
        reply = await this.#redis.evalsha(this.#sha, 1, k, ...args);
      } catch (e) {
        if (!(e instanceof Error && e.message.startsWith("NOSCRIPT"))) throw e;
        reply = await this.#redis.eval(this.#script, 1, k, ...args);
      }
    } catch (e) {
      this.#down(e);
      return this.#fallback.tryAcquire(key, permits);
    }
    if (this.#failedAt !== undefined) this.#up();
    const [ok, retry] = reply as [number, number];
    return ok === 1 ? { ok: true, retryAfterMs: 0 } : { ok: false, retryAfterMs: retry };
  }

  #down(error: unknown): void {
    const first = this.#failedAt === undefined;
    this.#failedAt = Date.now();
    if (!first) return;
    const message = error instanceof Error ? error.message : String(error);
    this.#logger.warn(
      { error: message },
      "rate limiter: Redis unreachable, limiting locally until it is back",
    );
    if (this.#telemetry !== undefined)
      emit(this.#telemetry, "ratelimit.fallback", { active: true, error: message });
  }

  #up(): void {
    this.#failedAt = undefined;
    this.#logger.info("rate limiter: Redis is back, limiting through it again");
    if (this.#telemetry !== undefined) emit(this.#telemetry, "ratelimit.fallback", { active: false });
  }
}
