/**
 * The broker conformance suite of `@weft/testing` against both NATS brokers on the machine's NATS
 * server, each declaring exactly the features its own tests prove.
 */
import { brokerConformance } from "@weft/testing";
import { beforeAll } from "vitest";
import { JETSTREAM_FEATURES, jetStreamBroker, NATS_FEATURES, natsBroker } from "../src/index.ts";
import { ensureNats, SERVERS } from "./integration/helpers.ts";

beforeAll(ensureNats);

brokerConformance("nats", () => natsBroker({ servers: SERVERS }), NATS_FEATURES);
// the suite's destinations all start with `conf.`: one stream, kept in memory for ten minutes
brokerConformance(
  "jetstream",
  () => jetStreamBroker({ servers: SERVERS, stream: { storage: "memory", maxAgeMs: 600_000 } }),
  JETSTREAM_FEATURES,
);
