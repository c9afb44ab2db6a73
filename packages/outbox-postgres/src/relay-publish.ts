/*
 * The one way both relays hand stored messages to the broker: messages of one partition key one after
 * the other in stored order (a key stops at its first failure, so a later message never overtakes an
 * earlier one), different keys and keyless messages side by side, each publish bounded by a timeout.
 * A message the broker refuses for what it is, not for being unavailable, is rejected and its key goes
 * on: trying it again would fail the same way and hold its key forever.
 */
import { Code, ConfigError, Reason, WeftError } from "@weft/core";
import type { Broker, Envelope } from "@weft/messaging";
import type { Rejected } from "./rejected.ts";
import { readStored, type StoredMessage } from "./wal-message.ts";

/** What became of a batch. */
export interface Published<T> {
  /** Confirmed by the broker, in the order they were confirmed. */
  readonly published: T[];
  /** The first failure of each key (later messages of that key were not tried). */
  readonly failed: { readonly item: T; readonly error: unknown }[];
  /** Not tried because an earlier message of their key failed. */
  readonly held: T[];
  /** Refused by the broker for good (`INVALID_ARGUMENT`/`MALFORMED_MESSAGE`): to be set aside, never retried. */
  readonly rejected: { readonly item: T; readonly error: WeftError }[];
}

/** Publishes `items` (in stored order) as described above; never rejects. */
async function publishInKeyOrder<T>(
  broker: Broker,
  items: readonly T[],
  envelope: (item: T) => Envelope,
  timeoutMs: number,
): Promise<Published<T>> {
  const groups = new Map<string | T, T[]>();
  for (const item of items) {
    const key = envelope(item).key;
    const group = key === undefined ? undefined : groups.get(key);
    if (group !== undefined) group.push(item);
    else groups.set(key ?? item, [item]);
  }
  const result: Published<T> = { published: [], failed: [], held: [], rejected: [] };
  await Promise.all(
    [...groups.values()].map(async (group) => {
      for (let i = 0; i < group.length; i++) {
        const item = group[i] as T;
        try {
          await broker.publish(envelope(item), { signal: AbortSignal.timeout(timeoutMs) });
          result.published.push(item);
        } catch (error) {
          const refused = refusal(error);
          if (refused !== undefined) {
            result.rejected.push({ item, error: refused });
            continue;
          }
          result.failed.push({ item, error });
          result.held.push(...group.slice(i + 1));
          return;
        }
      }
    }),
  );
  return result;
}

/** What became of a batch of stored messages: as `Published`, and those that did not decode rejected too. */
export interface PublishedStored<S extends StoredMessage> {
  readonly published: S[];
  readonly failed: { readonly item: S; readonly error: unknown }[];
  readonly held: S[];
  readonly rejected: Rejected<S>[];
}

/**
 * Decodes stored messages and publishes those that decode with `publishInKeyOrder`; the others, and
 * those the broker refuses for good, come back `rejected`, to be set aside. Never rejects.
 */
export async function publishStored<S extends StoredMessage>(
  broker: Broker,
  items: readonly S[],
  timeoutMs: number,
): Promise<PublishedStored<S>> {
  const readable: { readonly stored: S; readonly envelope: Envelope }[] = [];
  const rejected: Rejected<S>[] = [];
  for (const stored of items) {
    const envelope = readStored(stored);
    if (envelope instanceof WeftError)
      rejected.push({ stored, id: stored.storage === "table" ? stored.row.id : undefined, error: envelope });
    else readable.push({ stored, envelope });
  }
  const outcome = await publishInKeyOrder(broker, readable, (r) => r.envelope, timeoutMs);
  for (const { item, error } of outcome.rejected)
    rejected.push({ stored: item.stored, id: item.envelope.id, error });
  return {
    published: outcome.published.map((r) => r.stored),
    failed: outcome.failed.map(({ item, error }) => ({ item: item.stored, error })),
    held: outcome.held.map((r) => r.stored),
    rejected,
  };
}

/**
 * A broker's publish error that says the message itself cannot be carried (a `ConfigError`, as a
 * header NATS cannot carry, or `INVALID_ARGUMENT`), as `INVALID_ARGUMENT`/`MALFORMED_MESSAGE`;
 * `undefined` for any other failure (unavailable, timed out…), which is worth retrying.
 */
function refusal(error: unknown): WeftError | undefined {
  if (
    !(error instanceof ConfigError) &&
    !(error instanceof WeftError && error.code === Code.INVALID_ARGUMENT)
  )
    return undefined;
  return new WeftError(
    Code.INVALID_ARGUMENT,
    `malformed outbox message: the broker refused it: ${error.message}`,
    {
      reason: Reason.MALFORMED_MESSAGE,
      cause: error,
    },
  );
}
