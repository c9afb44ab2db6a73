/*
 * Opens the RabbitMQ broker in a server process of `asyncPatternsConformance` (patterns.test.ts), on
 * the exchange `WEFT_TEST_RABBIT_EXCHANGE` of the test's run.
 */
import type { Broker } from "@weft/messaging";
import { rabbitBroker } from "../../src/index.ts";
import { RABBIT_URL } from "../rabbit.ts";

export default async function open(): Promise<Broker> {
  const exchange = process.env.WEFT_TEST_RABBIT_EXCHANGE;
  if (exchange === undefined) throw new Error("WEFT_TEST_RABBIT_EXCHANGE is not set");
  return rabbitBroker({ url: RABBIT_URL, exchange });
}
