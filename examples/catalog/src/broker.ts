import type { Registry } from "@weft/core";
import { type Broker, directBroker } from "@weft/messaging";

/** What `WEFT_BROKER` may name, for the messages that say so. */
export const BROKER_URLS = "unset (direct)";

/**
 * Opens the broker `WEFT_BROKER` names, the same in every process of the demo: unset, the
 * brokerless `direct` broker, whose processes find one another in `registry` (nothing to install;
 * alone without one);
 * `nats://host:port` core NATS, `jetstream://host:port` JetStream (`@weft/broker-nats`, loaded only
 * then). Rejects with a message saying what to do when the URL is not one of those.
 */
export async function openBroker(url: string | undefined, registry: Registry | undefined): Promise<Broker> {
  if (url === undefined || url === "") return directBroker(registry === undefined ? {} : { registry });
  throw new Error(`WEFT_BROKER: expected ${BROKER_URLS}, got "${url}"`);
}
