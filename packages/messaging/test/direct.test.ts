/*
 * The direct broker through the conformance suite: each connection the suite asks for is its own
 * broker (its own server and port), the brokers of a run finding one another in one memory registry.
 */
import { createMemoryRegistry } from "@weft/core";
import { brokerConformance } from "@weft/testing";
import { afterAll } from "vitest";
import { DIRECT_FEATURES, directBroker } from "../src/index.ts";

const registry = createMemoryRegistry();
afterAll(() => registry.close());

brokerConformance("direct", () => directBroker({ registry }), DIRECT_FEATURES);
// A nack redelivers in the receiving process (the broker is not at-least-once only because a crash
// loses what a process holds), so the suite's redelivery tests, which crash nothing, run too.
brokerConformance("direct, redelivering in-process", () => directBroker({ registry }), {
  ...DIRECT_FEATURES,
  atLeastOnce: true,
});
