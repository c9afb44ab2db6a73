/*
 * Opens a NATS broker in a server process of `asyncPatternsConformance` (patterns.test.ts):
 * `WEFT_TEST_NATS_KIND` (`nats` or `jetstream`) on the server `WEFT_TEST_NATS_SERVERS`.
 */
import type { Broker } from "@weft/messaging";
import { jetStreamBroker, natsBroker } from "../../src/index.ts";

export default async function open(): Promise<Broker> {
  const servers = process.env.WEFT_TEST_NATS_SERVERS;
  if (servers === undefined) throw new Error("WEFT_TEST_NATS_SERVERS is not set");
  return process.env.WEFT_TEST_NATS_KIND === "jetstream"
    ? jetStreamBroker({ servers })
    : natsBroker({ servers });
}
