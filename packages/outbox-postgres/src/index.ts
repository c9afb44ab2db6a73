/**
 * @weft/outbox-postgres: transactional messaging on PostgreSQL. The outbox stores a message in the
 * caller's transaction; a relay (polling, or log tailing through logical replication) publishes it to
 * any Weft broker at-least-once with its id; the idempotent consumer applies each id once per group.
 * See `docs/outbox.md`.
 */
export {
  type IdempotentOptions,
  idempotent,
  idempotentConsumer,
  inboxTransaction,
  pruneInboxOlderThan,
} from "./idempotent.ts";
export {
  createLogTailingRelay,
  type LogTailingRelay,
  type LogTailingRelayOptions,
  type SlotLag,
} from "./log-relay.ts";
export {
  createOutbox,
  type Outbox,
  type OutboxOptions,
  type OutboxPublishOptions,
  type OutboxStorage,
  WAL_PREFIX,
} from "./outbox.ts";
export {
  createPollingRelay,
  type OutboxLag,
  type PollingRelay,
  type PollingRelayOptions,
} from "./polling-relay.ts";
export { type RedisIdempotentOptions, type RedisLike, redisIdempotentConsumer } from "./redis-dedup.ts";
export type { RelayOptions } from "./relay-loop.ts";
export { type MigrateResult, migrate, SCHEMA_VERSION } from "./schema.ts";
export {
  type ClientPool,
  type DrizzleLike,
  type DrizzleSql,
  fromDrizzle,
  fromKysely,
  fromPrisma,
  type KyselyLike,
  type PrismaLike,
  type Queryable,
  type QueryResult,
} from "./sql.ts";
export { decodeWalMessage, encodeWalMessage } from "./wal-message.ts";
