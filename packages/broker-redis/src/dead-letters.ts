/*
 * What `weft dlq` needs of Redis Streams: a group made ahead of its first subscription, and a
 * stream read without consuming it (XINFO GROUPS, XPENDING, XRANGE: nothing is claimed, no delivery
 * count grows).
 */
import type { BrowsedMessage, BrowseOptions } from "@weft/messaging";
import type { Redis } from "ioredis";
import { entryEnvelope } from "./wire.ts";

/** XGROUP CREATE … $ MKSTREAM: the group starts at the stream's end; an existing one stays where it is. */
export async function createStreamGroup(redis: Redis, key: string, group: string): Promise<void> {
  await redis.xgroup("CREATE", key, group, "$", "MKSTREAM").catch((e: unknown) => {
    if (!(e instanceof Error && e.message.startsWith("BUSYGROUP"))) throw e;
  });
}

/**
 * The entries of stream `key` that `group` has not acknowledged, oldest first: its pending entries
 * (XPENDING: delivered, not acked) then those after its last-delivered id. Without a group, the
 * stream's first entries (XRANGE). A stream or group that does not exist holds nothing.
 */
export async function browseStream(
  redis: Redis,
  key: string,
  destination: string,
  options: BrowseOptions,
): Promise<BrowsedMessage[]> {
  const { group, limit } = options;
  if (group === undefined)
    return entries(destination, await redis.xrangeBuffer(key, "-", "+", "COUNT", limit));
  const last = await lastDelivered(redis, key, group);
  if (last === undefined) return [];
  const pending = (await redis.xpending(key, group, "-", "+", limit)) as [string, string, number, number][];
  const found: BrowsedMessage[] = [];
  for (const [id] of pending) {
    // one id each: an entry trimmed away (MAXLEN) while pending is skipped
    found.push(...entries(destination, await redis.xrangeBuffer(key, id, id)));
  }
  if (found.length < limit)
    found.push(
      ...entries(destination, await redis.xrangeBuffer(key, `(${last}`, "+", "COUNT", limit - found.length)),
    );
  return found.slice(0, limit);
}

/** The group's last-delivered id, `undefined` when the stream or the group does not exist. */
async function lastDelivered(redis: Redis, key: string, group: string): Promise<string | undefined> {
  let groups: unknown[];
  try {
    groups = (await redis.xinfo("GROUPS", key)) as unknown[];
  } catch (e) {
    if (e instanceof Error && /no such key/i.test(e.message)) return undefined;
    throw e;
  }
  for (const g of groups) {
    const fields = g as unknown[];
    const info = new Map<string, unknown>();
    for (let i = 0; i + 1 < fields.length; i += 2) info.set(String(fields[i]), fields[i + 1]);
    if (info.get("name") === group) return String(info.get("last-delivered-id"));
  }
  return undefined;
}

function entries(destination: string, raw: [Buffer, Buffer[]][]): BrowsedMessage[] {
  return raw.map(([id, fields]) => {
    const { envelope, malformed } = entryEnvelope(destination, id.toString("latin1"), fields);
    return malformed === undefined ? { envelope } : { envelope, malformed };
  });
}
