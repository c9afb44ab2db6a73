import { ConfigError, createLocalRegistry, isHostPort } from "@weft/core";
import type { BrokerScheme } from "../broker-url.ts";
import { checkParams, integerParams, redactBrokerUrl, textParams } from "../url-params.ts";
import { directBroker } from "./direct-broker.ts";

const NUMBERS = ["port", "acceptTimeoutMs", "announceTimeoutMs", "ttlMs"] as const;
const TEXTS = ["host", "advertise"] as const;

/**
 * The `direct` broker URLs (the brokerless broker; built into `openBroker`):
 *
 * - `direct:///?peers=host:port,host:port`: the other processes are that static list (without
 *   `peers`: this process alone);
 * - `direct+local:///?dir=/path`: they are found in the local registry in `dir` (default: its default
 *   directory under the OS temp dir), where this one registers too.
 *
 * Both take `host`, `port`, `advertise`, `acceptTimeoutMs`, `announceTimeoutMs` and `ttlMs` as
 * parameters (`directBroker`'s options). Throws `ConfigError` (option `broker`) for an authority, a
 * path, another registry (`direct+etcd:`: give `directBroker` a registry object instead), an unknown
 * parameter, or a peer that is not `host:port`.
 */
export const directScheme: BrokerScheme = async (url) => {
  const registryName = url.scheme === "direct" ? undefined : url.scheme.slice("direct+".length);
  if (url.authority !== "" || url.endpoint !== "" || (registryName !== undefined && registryName !== "local"))
    throw new ConfigError(
      "broker",
      "direct:///?peers=host:port,… or direct+local:///?dir=… (no authority, no path)",
      redactBrokerUrl(url.text),
    );
  const options = { ...textParams(url, TEXTS), ...integerParams(url, NUMBERS) };
  if (registryName === undefined) {
    checkParams(url, ["peers", ...TEXTS, ...NUMBERS]);
    const peers =
      url.params
        .get("peers")
        ?.split(",")
        .filter((p) => p !== "") ?? [];
    if (!peers.every(isHostPort))
      throw new ConfigError("broker (parameter peers)", "host:port,host:port…", peers.join(","));
    return directBroker({ ...options, peers });
  }
  checkParams(url, ["dir", ...TEXTS, ...NUMBERS]);
  const dir = url.params.get("dir");
  const registry = createLocalRegistry(dir === null ? {} : { directory: dir });
  let broker: Awaited<ReturnType<typeof directBroker>>;
  try {
    broker = await directBroker({ ...options, registry });
  } catch (error) {
    await registry.close();
    throw error;
  }
  // the registry was opened for this broker: it goes with it
  const close = broker.close.bind(broker);
  return Object.assign(broker, {
    close: async () => {
      await close();
      await registry.close();
    },
  });
};
