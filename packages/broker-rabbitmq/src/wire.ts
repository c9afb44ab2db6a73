/*
 * An envelope as an AMQP message and back, through the one header mapping of `@weft/messaging`
 * (`toHeaders`/`fromHeaders`): the `weft-*` fields travel as AMQP headers a raw client reads as is;
 * the id, correlation id, content type and time are also set as AMQP properties, where AMQP tools
 * look for them.
 */
import type { WeftError } from "@weft/core";
import type { Envelope } from "@weft/messaging";
import { envelopeOf, toHeaders } from "@weft/messaging";
import type { Message, Options } from "amqplib";

/** Headers RabbitMQ itself adds (redelivery count, dead-lettering history): not the application's. */
const BROKER_HEADER = /^x-(delivery-count|death|first-death-|last-death-|received-from)/;

/** The publish properties of `envelope`: persistent unless `transient`; `mandatory` asks for a basic.return when nothing is bound. */
export function publishProperties(
  envelope: Envelope,
  transient: boolean,
  mandatory: boolean,
): Options.Publish {
  const properties: Options.Publish = {
    headers: toHeaders(envelope),
    messageId: envelope.id,
    contentType: envelope.contentType,
    timestamp: Math.floor(envelope.publishedAt / 1000),
    persistent: !transient,
    mandatory,
  };
  if (envelope.correlationId !== undefined) properties.correlationId = envelope.correlationId;
  return properties;
}

/** The body's bytes as the Buffer AMQP writes (a view, not a copy). */
export function bodyBuffer(envelope: Envelope): Buffer {
  const body = envelope.body;
  return Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
}

/**
 * The envelope of a consumed message (`destination` as the subscription reports it), through
 * `@weft/messaging`'s `envelopeOf`: never throws; `malformed` is set for a message whose reserved
 * headers do not parse. A message from a raw client without Weft's headers gets its AMQP
 * `message-id` as id (else a new one), its `timestamp` as publish time and its `content-type`
 * property.
 */
export function readMessage(
  message: Message,
  destination: string,
): { envelope: Envelope; malformed: WeftError | undefined } {
  const properties = message.properties;
  const headers: Record<string, string> = {};
  if (typeof properties.contentType === "string") headers["content-type"] = properties.contentType;
  for (const [name, value] of Object.entries(properties.headers ?? {})) {
    if (BROKER_HEADER.test(name)) continue;
    if (typeof value === "string") headers[name] = value;
    else if (typeof value === "number" || typeof value === "boolean") headers[name] = String(value);
    else if (Buffer.isBuffer(value)) headers[name] = value.toString("utf8");
  }
  const timestamp = typeof properties.timestamp === "number" ? properties.timestamp * 1000 : undefined;
  const messageId = typeof properties.messageId === "string" ? properties.messageId : undefined;
  return envelopeOf(destination, headers, message.content, { brokerId: messageId, timestamp });
}

/** Which delivery of a quorum queue's message this is: RabbitMQ counts earlier ones in `x-delivery-count`. */
export function deliveryCountOf(message: Message): number | undefined {
  const count: unknown = message.properties.headers?.["x-delivery-count"];
  return typeof count === "number" ? count + 1 : undefined;
}
