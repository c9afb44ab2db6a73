/*
 * The one way both relays hand stored messages to the broker: messages of one partition key one after
 * the other in stored order (a key stops at its first failure, so a later message never overtakes an
 * earlier one), different keys and keyless messages side by side, each publish bounded by a timeout.
 */
import type { Broker, Envelope } from "@weft/messaging";

/** What became of a batch. */
export interface Published<T> {
  /** Confirmed by the broker, in the order they were confirmed. */
  readonly published: T[];
  /** The first failure of each key (later messages of that key were not tried). */
  readonly failed: { readonly item: T; readonly error: unknown }[];
  /** Not tried because an earlier message of their key failed. */
  readonly held: T[];
}

/** Publishes `items` (in stored order) as described above; never rejects. */
export async function publishInKeyOrder<T>(
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
  const result: Published<T> = { published: [], failed: [], held: [] };
  await Promise.all(
    [...groups.values()].map(async (group) => {
      for (let i = 0; i < group.length; i++) {
        const item = group[i] as T;
        try {
          await broker.publish(envelope(item), { signal: AbortSignal.timeout(timeoutMs) });
          result.published.push(item);
        } catch (error) {
          result.failed.push({ item, error });
          result.held.push(...group.slice(i + 1));
          return;
        }
      }
    }),
  );
  return result;
}
