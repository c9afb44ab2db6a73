import { brokerConformance } from "@weft/testing";
import { afterAll } from "vitest";
import { type Broker, MEMORY_FEATURES, memoryBroker } from "../src/index.ts";

// the suite's factory makes "connections to one server": here views of one in-process broker, whose
// close leaves the broker to the others (it is closed after the suite)
const shared = memoryBroker();
afterAll(() => shared.close());
const connection = (): Broker => ({
  name: shared.name,
  features: shared.features,
  publish: (e, o) => shared.publish(e, o),
  subscribe: (s, sink) => shared.subscribe(s, sink),
  openInbox: (h) => shared.openInbox(h),
  close: () => Promise.resolve(),
});

brokerConformance("memory", async () => connection(), MEMORY_FEATURES);
