/**
 * `weft dlq` on RabbitMQ, against the machine's server: the dead-letter suite (dead letters held in
 * the dlq group's queue, listed by basic.get and given back, replayed by id and all), and the broker
 * URL scheme (`rabbitScheme`) opening a real broker.
 */
import { ConfigError } from "@weft/core";
import { openBroker } from "@weft/messaging";
import { deadLetterConformance } from "@weft/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rabbitBroker, rabbitScheme } from "../../src/index.ts";
import { ensureRabbit, RABBIT_URL, type Raw, rawClient, unique } from "../rabbit.ts";

const exchange = unique("weftdlq");
let raw: Raw;
beforeAll(async () => {
  ensureRabbit();
  raw = await rawClient();
});
afterAll(async () => {
  await raw.cleanup(exchange);
  await raw.close();
});

deadLetterConformance("rabbitmq", () => rabbitBroker({ url: RABBIT_URL, exchange }));

describe("rabbitScheme", () => {
  const schemes = { amqp: rabbitScheme, amqps: rabbitScheme };

  it("opens the RabbitMQ broker with the URL's parameters", async () => {
    const broker = await openBroker(`${RABBIT_URL}?exchange=${exchange}&connectionName=dlq-test`, schemes);
    expect(broker.name).toBe("rabbitmq");
    expect(await broker.browse!("nothing.here", { group: "dlq", limit: 5 })).toEqual([]);
    await broker.close();
  });

  it("refuses a missing host and unknown parameters with ConfigError, without the password", async () => {
    for (const bad of ["amqp://", "amqp://u:pw@", `${RABBIT_URL}?prefix=x`, `${RABBIT_URL}?deliveryLimit=0`])
      await expect(openBroker(bad, schemes), bad).rejects.toThrow(ConfigError);
    await expect(openBroker("amqp://u:s3cret@/x?bad=1", schemes)).rejects.not.toThrow(/s3cret/);
  });
});
