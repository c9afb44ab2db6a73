/**
 * The async patterns of `@weft/testing` (RPC then event, RPC stream ack) on RabbitMQ and the
 * machine's server, with the server restarted gracefully in this process and as a process of its own:
 * work accepted before the restart and not started waits in the group's queue for the restarted
 * server.
 */
import { fileURLToPath } from "node:url";
import { asyncPatternsConformance } from "@weft/testing";
import { afterAll, beforeAll } from "vitest";
import { rabbitBroker } from "../src/index.ts";
import { ensureRabbit, RABBIT_URL, rawClient, unique } from "./rabbit.ts";

// one exchange for this run: its queues (`<exchange>/…`) are removed afterwards
const exchange = unique("weft-patterns");
beforeAll(() => ensureRabbit());
afterAll(async () => {
  const raw = await rawClient();
  await raw.cleanup(exchange);
  await raw.close();
});

asyncPatternsConformance("rabbitmq", () => rabbitBroker({ url: RABBIT_URL, exchange }), {
  waitMs: 20_000,
  queuesWhileAway: true,
  process: {
    brokerModule: fileURLToPath(new URL("./integration/patterns-broker.ts", import.meta.url)),
    env: { WEFT_TEST_RABBIT_EXCHANGE: exchange },
  },
});
