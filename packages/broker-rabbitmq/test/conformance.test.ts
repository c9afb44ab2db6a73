/*
 * The conformance suite every broker runs, against the machine's RabbitMQ, with exactly the
 * features `rabbitBroker` declares.
 */
import { brokerConformance } from "@weft/testing";
import { afterAll, beforeAll } from "vitest";
import { RABBIT_FEATURES, rabbitBroker } from "../src/index.ts";
import { ensureRabbit, RABBIT_URL, rawClient, unique } from "./rabbit.ts";

// one exchange for this run: its queues (`<exchange>/…`) are removed afterwards
const exchange = unique("weft-conformance");
beforeAll(() => ensureRabbit());
afterAll(async () => {
  const raw = await rawClient();
  await raw.cleanup(exchange);
  await raw.close();
});

brokerConformance("rabbitmq", () => rabbitBroker({ url: RABBIT_URL, exchange }), RABBIT_FEATURES, {
  waitMs: 20_000,
});
