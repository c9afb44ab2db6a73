/*
 * The weaker idempotent consumer, for handlers without a database: a Redis key per (group, message id)
 * set with NX. Typed structurally, so an ioredis client is one and this package does not depend on
 * ioredis.
 */
import { Code, ConfigError, type Telemetry, WeftError } from "@weft/core";
import { emit, positiveInteger, telemetryOption } from "@weft/core/internal";
import type { MessageInterceptor } from "@weft/messaging";

/** The Redis commands used, as ioredis (and node-redis through a thin wrapper) offers them. */
export interface RedisLike {
  set(key: string, value: string, px: "PX", ms: number, nx: "NX"): Promise<string | null>;
  set(key: string, value: string, px: "PX", ms: number): Promise<string | null>;
  get(key: string): Promise<string | null>;
  del(key: string): Promise<number>;
}

export interface RedisIdempotentOptions {
  /** How long a processed id is remembered, in ms. Default 7 days. */
  readonly ttlMs?: number;
  /**
   * How long a delivery being handled holds its id, in ms: a consumer that crashes mid-handler blocks
   * the redelivery this long. Longer than the slowest handler. Default 60,000.
   */
  readonly processingTtlMs?: number;
  /** Key prefix; default `weft:inbox:`. Keys are `<prefix><group>:<id>`. */
  readonly prefix?: string;
  /** As `IdempotentOptions.group`. */
  readonly group?: string;
  readonly telemetry?: Telemetry;
}

const DONE = "done";
const PROCESSING = "processing";

/**
 * A consume-side interceptor that handles each message id once per group as long as Redis remembers
 * it: before the handler it sets `<prefix><group>:<id>` to `processing` (NX, `processingTtlMs`), after
 * it to `done` (`ttlMs`); a handler that throws deletes the key so the redelivery runs it again. An id
 * found `done` is skipped (and acked); one found `processing` (another consumer has it) fails the
 * delivery with `ABORTED`, so it is redelivered later.
 *
 * Weaker than `idempotentConsumer`: the record and the effect are not one transaction. A consumer
 * that crashes after the effect but before `done` leaves `processing` to expire, and the redelivery
 * applies the effect again; a record that expires (`ttlMs`) or is evicted lets a late duplicate
 * through. Use it for effects that tolerate a rare duplicate. Throws a `ConfigError` for bad options.
 */
export function redisIdempotentConsumer(
  redis: RedisLike,
  options: RedisIdempotentOptions = {},
): MessageInterceptor {
  if (typeof (redis as RedisLike | undefined)?.set !== "function")
    throw new ConfigError("redis", "a Redis client (ioredis)", redis);
  const ttlMs = positiveInteger("ttlMs", options.ttlMs ?? 7 * 86_400_000);
  const processingTtlMs = positiveInteger("processingTtlMs", options.processingTtlMs ?? 60_000);
  const prefix = options.prefix ?? "weft:inbox:";
  const telemetry = telemetryOption(options.telemetry);
  return (next) => async (message) => {
    if (message.side !== "consume") return next(message);
    const group = message.group ?? options.group;
    if (group === undefined)
      throw new ConfigError("group", "a group for the ids of a private subscription (it has none)", group);
    const key = `${prefix}${group}:${message.id}`;
    if ((await redis.set(key, PROCESSING, "PX", processingTtlMs, "NX")) === null) {
      if ((await redis.get(key)) === DONE) {
        if (telemetry !== undefined) emit(telemetry, "inbox.duplicate", { group, id: message.id });
        return;
      }
      throw new WeftError(
        Code.ABORTED,
        `message ${message.id} is being handled by another consumer of ${group}`,
      );
    }
    try {
      await next(message);
    } catch (error) {
      await redis.del(key).catch(() => 0); // the key expires anyway
      throw error;
    }
    await redis.set(key, DONE, "PX", ttlMs);
  };
}
