import type { Registry } from "@weft/core";
import { type Broker, directBroker } from "@weft/messaging";

/** What `WEFT_BROKER` may name, for the messages that say so. */
export const BROKER_URLS = "unset (direct), nats://host:port, jetstream://host:port or redis://host:port";

/**
 * Opens the broker `WEFT_BROKER` names, the same in every process of the demo: unset, the
 * brokerless `direct` broker, whose processes find one another in `registry` (nothing to install;
 * alone without one); `nats://host:port` core NATS, `jetstream://host:port` JetStream
 * (`@weft/broker-nats`), `redis://host:port` Redis Streams (`@weft/broker-redis`), each package loaded
 * only then.
 * Rejects with a message saying what to do when the URL is not one of those.
 */
export async function openBroker(url: string | undefined, registry: Registry | undefined): Promise<Broker> {
  if (url === undefined || url === "") return directBroker(registry === undefined ? {} : { registry });
  const parsed = URL.canParse(url) ? new URL(url) : undefined;
  const servers = parsed?.host ?? "";
  switch (servers === "" ? "" : parsed?.protocol) {
    case "nats:":
      return (await import("@weft/broker-nats")).natsBroker({ servers });
    case "jetstream:":
      // the demo's groups are named per run: a minute after it, JetStream forgets them
      return (await import("@weft/broker-nats")).jetStreamBroker({ servers, groupInactiveMs: 60_000 });
    case "redis:":
      return (await import("@weft/broker-redis")).redisStreamsBroker({ url });
  }
  throw new Error(`WEFT_BROKER: expected ${BROKER_URLS}, got "${shownUrl(url)}"`);
}

/**
 * After a JetStream run (`WEFT_BROKER=jetstream://…`), once every process of the demo is done:
 * deletes the streams the broker made on demand for `subjects` (the demo's: `weft_catalog`,
 * `weft_shop`), so the next run starts empty and a core NATS run on the same server is not answered
 * by them (a stream answers a request on a subject it covers). Resolves with the names deleted;
 * nothing for the other brokers.
 */
export async function removeDemoStreams(
  url: string | undefined,
  subjects: readonly string[],
): Promise<string[]> {
  const parsed = url !== undefined && URL.canParse(url) ? new URL(url) : undefined;
  if (parsed?.protocol !== "jetstream:") return [];
  const { connect } = await import("@nats-io/transport-node");
  const { jetstreamManager } = await import("@nats-io/jetstream");
  const nc = await connect({ servers: parsed.host });
  try {
    const jsm = await jetstreamManager(nc);
    const deleted: string[] = [];
    for (const subject of subjects) {
      const name = await jsm.streams.find(subject).catch(() => undefined);
      // only the streams the broker made (its default prefix), never one an operator made
      if (name === undefined || !name.startsWith("weft_") || deleted.includes(name)) continue;
      await jsm.streams.delete(name);
      deleted.push(name);
    }
    return deleted;
  } finally {
    await nc.close();
  }
}

/** `url` as the demo prints it: a password replaced by `***`. */
export function shownUrl(url: string): string {
  if (!URL.canParse(url)) return url;
  const parsed = new URL(url);
  if (parsed.password !== "") parsed.password = "***";
  return parsed.href;
}
