/*
 * What `weft dlq list` needs of RabbitMQ: a group's queue read without consuming it. AMQP has no
 * peek, so its messages are fetched with `basic.get` (manual ack) on a channel of their own and all
 * given back (`basic.nack` with requeue) before the channel closes.
 */
import type { BrowsedMessage, BrowseOptions } from "@weft/messaging";
import type { ChannelModel, GetMessage } from "amqplib";
import { groupQueue } from "./topology.ts";
import { readMessage } from "./wire.ts";

/**
 * The first `limit` messages of `group`'s queue on `destination` (`<exchange>/<group>/<destination>`),
 * given back at once. Nothing without a group (RabbitMQ keeps messages only in queues) or when the
 * queue does not exist. A quorum queue counts a message given back as returned, not as a failed
 * delivery; messages being delivered to a consumer at the same time are not seen.
 */
export async function browseQueue(
  connection: ChannelModel,
  exchange: string,
  destination: string,
  options: BrowseOptions,
): Promise<BrowsedMessage[]> {
  if (options.group === undefined) return [];
  const queue = groupQueue(exchange, options.group, destination);
  const channel = await connection.createChannel();
  // a missing queue closes the channel (404): nothing to list
  let closed = false;
  channel.on("error", () => {});
  channel.on("close", () => {
    closed = true;
  });
  const found: BrowsedMessage[] = [];
  try {
    try {
      await channel.checkQueue(queue);
    } catch (error) {
      if (closed) return [];
      throw error;
    }
    while (found.length < options.limit) {
      const message: GetMessage | false = await channel.get(queue, { noAck: false });
      if (message === false) break;
      const { envelope, malformed } = readMessage(message, message.fields.routingKey);
      found.push(malformed === undefined ? { envelope } : { envelope, malformed });
    }
    if (found.length > 0) channel.nackAll(true);
    return found;
  } finally {
    if (!closed) await channel.close().catch(() => {});
  }
}
