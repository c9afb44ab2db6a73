import { ConfigError } from "@weft/core";
import { type BrokerScheme, redactBrokerUrl } from "@weft/messaging";
import { checkParams, integerParams, textParams } from "@weft/messaging/internal";
import { rabbitBroker } from "./rabbit-broker.ts";

/**
 * The broker URL scheme of RabbitMQ, for `openBroker(url, { amqp: rabbitScheme, amqps: rabbitScheme
 * })`: `amqp://[user:password@]host[:port][/vhost][?parameters]` (`amqps://` for TLS) opens
 * `rabbitBroker` on that server, the URL without its parameters going to the client as it is. The
 * parameters are its options: `exchange`, `connectionName`, and the positive integers
 * `deliveryLimit`, `heartbeatSeconds`. Throws `ConfigError` (option `broker`) for a URL without a
 * host or with an unknown parameter; the factory checks the values.
 */
export const rabbitScheme: BrokerScheme = (url) => {
  if ((url.scheme !== "amqp" && url.scheme !== "amqps") || url.authority.replace(/^.*@/, "") === "")
    throw new ConfigError(
      "broker",
      "amqp://[user:password@]host[:port][/vhost][?parameters] (amqps:// for TLS)",
      redactBrokerUrl(url.text),
    );
  checkParams(url, ["exchange", "connectionName", "deliveryLimit", "heartbeatSeconds"]);
  const server = `${url.scheme}://${url.authority}${url.endpoint === "" ? "" : `/${encodeURIComponent(url.endpoint)}`}`;
  return rabbitBroker({
    url: server,
    ...textParams(url, ["exchange", "connectionName"]),
    ...integerParams(url, ["deliveryLimit", "heartbeatSeconds"]),
  });
};
