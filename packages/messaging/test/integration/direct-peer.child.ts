/*
 * A process of the direct broker tests: joins the local registry in `directory`, subscribes to
 * `destination` in `group`, reports every message it takes to its parent (`{ id }`) and, for a
 * request, replies with the request's body after a random delay of up to `replyDelayMs`.
 */
import { createLocalRegistry } from "@weft/core";
import { directBroker, newMessageId } from "../../src/index.ts";

interface Config {
  readonly directory: string;
  readonly destination: string;
  readonly group: string;
  readonly replyDelayMs: number;
}

const config = JSON.parse(process.argv[2]!) as Config;
const registry = createLocalRegistry({ directory: config.directory, pollIntervalMs: 100 });
const broker = await directBroker({ registry });
await broker.subscribe(
  {
    destination: config.destination,
    group: config.group,
    maxInFlight: 16,
    ackWaitMs: 30_000,
    partitions: undefined,
  },
  (delivery) => {
    const request = delivery.envelope;
    process.send?.({ id: request.id });
    if (request.replyTo === undefined) {
      void delivery.ack();
      return;
    }
    setTimeout(() => {
      void delivery.ack();
      broker
        .publish({
          id: newMessageId(),
          kind: "document",
          destination: request.replyTo!,
          correlationId: request.correlationId,
          publishedAt: Date.now(),
          contentType: request.contentType,
          headers: {},
          body: request.body,
        })
        .catch(() => {});
    }, Math.random() * config.replyDelayMs);
  },
);
process.send?.({ ready: broker.address });
