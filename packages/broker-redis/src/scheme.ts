import { ConfigError } from "@weft/core";
import { type BrokerScheme, redactBrokerUrl } from "@weft/messaging";
import { checkParams, integerParams, textParams } from "@weft/messaging/internal";
import { redisStreamsBroker } from "./redis-broker.ts";

const NUMBERS = [
  "maxLength",
  "dedupWindowMs",
  "blockMs",
  "claimIntervalMs",
  "partitionLeaseMs",
  "idleConsumerMs",
  "connectTimeoutMs",
] as const;

/**
 * The broker URL scheme of Redis Streams, for `openBroker(url, { redis: redisScheme, rediss:
 * redisScheme })`: `redis://[user:password@]host:port[/db][?parameters]` (`rediss://` for TLS) opens
 * `redisStreamsBroker` on that server, with its options as parameters: `prefix` (the key prefix,
 * default `weft:`), and the positive integers `maxLength`, `dedupWindowMs`, `blockMs`,
 * `claimIntervalMs`, `partitionLeaseMs`, `idleConsumerMs`, `connectTimeoutMs`. Throws `ConfigError`
 * (option `broker`) for a URL without a host or with an unknown parameter; the factory checks the
 * values.
 */
export const redisScheme: BrokerScheme = (url) => {
  if ((url.scheme !== "redis" && url.scheme !== "rediss") || url.authority.replace(/^.*@/, "") === "")
    throw new ConfigError(
      "broker",
      "redis://[user:password@]host:port[/db][?parameters] (rediss:// for TLS)",
      redactBrokerUrl(url.text),
    );
  checkParams(url, ["prefix", ...NUMBERS]);
  const server = `${url.scheme}://${url.authority}${url.endpoint === "" ? "" : `/${encodeURIComponent(url.endpoint)}`}`;
  return redisStreamsBroker({ url: server, ...textParams(url, ["prefix"]), ...integerParams(url, NUMBERS) });
};
