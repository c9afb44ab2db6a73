import type { Registry } from "@weft/core";
import { type Broker, directBroker } from "@weft/messaging";

/** What `WEFT_BROKER` may name, for the messages that say so. */
export const BROKER_URLS = "unset (direct), redis://host:port";

/**
 * Opens the broker `WEFT_BROKER` names, the same in every process of the demo: unset, the
 * brokerless `direct` broker, whose processes find one another in `registry` (nothing to install;
 * alone without one); `redis://host:port` Redis Streams (`@weft/broker-redis`, loaded only then).
 * Rejects with a message saying what to do when the URL is not one of those.
 */
export async function openBroker(url: string | undefined, registry: Registry | undefined): Promise<Broker> {
  if (url === undefined || url === "") return directBroker(registry === undefined ? {} : { registry });
  const scheme = URL.canParse(url) ? new URL(url).protocol : "";
  if (scheme === "redis:") return (await import("@weft/broker-redis")).redisStreamsBroker({ url });
  throw new Error(`WEFT_BROKER: expected ${BROKER_URLS}, got "${url}"`);
}
