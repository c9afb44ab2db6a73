import { ConfigError, isHostPort } from "@weft/core";
import { type BrokerScheme, type BrokerUrl, redactBrokerUrl } from "@weft/messaging";
import { checkParams, integerParams, textParams } from "@weft/messaging/internal";
import type { NatsConnectionOptions } from "./connection.ts";
import { jetStreamBroker, type StreamOptions } from "./jetstream-broker.ts";
import { natsBroker } from "./nats-broker.ts";

const CONNECTION_PARAMS = ["name", "connectTimeoutMs", "reconnectWaitMs", "requestTimeoutMs"] as const;
const JETSTREAM_PARAMS = [
  "prefix",
  "storage",
  "replicas",
  "maxAgeMs",
  "duplicateWindowMs",
  "deliverPolicy",
  "groupMaxAckPending",
  "groupInactiveMs",
] as const;

/**
 * The broker URL schemes of NATS, for `openBroker(url, { nats: natsScheme, jetstream: natsScheme })`:
 *
 * - `nats://[user:password@ | token@]host:port[,host:port…][?maxPending=N]` opens `natsBroker` (core
 *   NATS) on those servers;
 * - `jetstream://…` the same servers as `jetStreamBroker`, with its options as parameters:
 *   `prefix`, `storage` (`file`|`memory`), `replicas`, `maxAgeMs`, `duplicateWindowMs` (the streams
 *   made on demand), `deliverPolicy` (`new`|`all`), `groupMaxAckPending`, `groupInactiveMs`.
 *
 * Both take `name`, `connectTimeoutMs`, `reconnectWaitMs` and `requestTimeoutMs`. User, password and
 * token are percent-decoded. Throws `ConfigError` (option `broker`) for a URL without a `host:port`,
 * with a path, or with an unknown parameter; the factories check the values.
 */
export const natsScheme: BrokerScheme = (url) => {
  const jet = url.scheme === "jetstream";
  if (!jet && url.scheme !== "nats")
    throw new ConfigError("broker", "a nats:// or jetstream:// URL", redactBrokerUrl(url.text));
  checkParams(url, [...CONNECTION_PARAMS, ...(jet ? JETSTREAM_PARAMS : ["maxPending"])]);
  const connection = connectionOf(url);
  if (!jet) return natsBroker({ ...connection, ...integerParams(url, ["maxPending"]) });
  const stream = {
    ...textParams(url, ["prefix", "storage"]),
    ...integerParams(url, ["replicas", "maxAgeMs", "duplicateWindowMs"]),
  };
  return jetStreamBroker({
    ...connection,
    // the factory checks the values (storage, deliverPolicy) and names the bad one
    ...(Object.keys(stream).length > 0 && { stream: stream as StreamOptions }),
    ...(textParams(url, ["deliverPolicy"]) as { deliverPolicy?: "new" | "all" }),
    ...integerParams(url, ["groupMaxAckPending", "groupInactiveMs"]),
  });
};

function connectionOf(url: BrokerUrl): NatsConnectionOptions {
  const at = url.authority.lastIndexOf("@");
  const userinfo = at < 0 ? undefined : url.authority.slice(0, at);
  const servers = url.authority.slice(at + 1).split(",");
  if (url.endpoint !== "" || !servers.every(isHostPort))
    throw new ConfigError(
      "broker",
      `${url.scheme}://[user:password@]host:port[,host:port…][?parameters] (no path)`,
      redactBrokerUrl(url.text),
    );
  const colon = userinfo?.indexOf(":") ?? -1;
  const credentials =
    userinfo === undefined
      ? {}
      : colon < 0
        ? { token: decodeURIComponent(userinfo) }
        : {
            user: decodeURIComponent(userinfo.slice(0, colon)),
            pass: decodeURIComponent(userinfo.slice(colon + 1)),
          };
  return {
    servers,
    ...credentials,
    ...textParams(url, ["name"]),
    ...integerParams(url, ["connectTimeoutMs", "reconnectWaitMs", "requestTimeoutMs"]),
  };
}
