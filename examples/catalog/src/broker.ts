import type { Registry } from "@weft/core";
import {
  type Broker,
  type BrokerScheme,
  type BrokerSchemes,
  directBroker,
  openBroker as openBrokerUrl,
} from "@weft/messaging";

/** A scheme of a backend package, loaded only when a URL of that scheme is opened. */
const lazy =
  (load: () => Promise<BrokerScheme>): BrokerScheme =>
  async (url) =>
    (await load())(url);
const nats = lazy(async () => (await import("@weft/broker-nats")).natsScheme);
const redis = lazy(async () => (await import("@weft/broker-redis")).redisScheme);

/** The broker URL schemes of the demo, beside `openBroker`'s built-in `memory:` and `direct:`. */
export const DEMO_SCHEMES: BrokerSchemes = { nats, jetstream: nats, redis, rediss: redis };

/**
 * Opens the broker `WEFT_BROKER` names, the same in every process of the demo: unset, the
 * brokerless `direct` broker, whose processes find one another in `registry` (nothing to install;
 * alone without one); else a broker URL (`openBroker` of `@weft/messaging`): `nats://host:port` core
 * NATS, `jetstream://host:port` JetStream, `redis://host:port` Redis Streams, each backend's package
 * loaded only then. Rejects with a `ConfigError` naming the schemes it knows for any other URL.
 */
export async function openBroker(url: string | undefined, registry: Registry | undefined): Promise<Broker> {
  if (url === undefined || url === "") return directBroker(registry === undefined ? {} : { registry });
  return openBrokerUrl(url, DEMO_SCHEMES);
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
