/*
 * Broker URLs: how configuration names a broker, as targets name a registry in core
 * (`parseTarget`, `Schemes`). A scheme maps to the factory that opens its broker; the table is passed
 * in (`schemes`), never global. `memory:` and `direct:` are built in; each backend package exports its own scheme
 * (`natsScheme`, `redisScheme`, `rabbitScheme`, …) for the caller to give.
 */
import { ConfigError, parseTarget, type Target } from "@weft/core";
import type { Broker } from "./broker.ts";
import { directScheme } from "./direct/scheme.ts";
import { memoryBroker } from "./memory.ts";
import { redactBrokerUrl } from "./url-params.ts";

export { redactBrokerUrl };

/**
 * A parsed broker URL: core's `Target` (`scheme`, `authority`, `endpoint` = the path without its
 * leading `/`, `params`). `text` is the URL as given, credentials included: never log it, log
 * `redactBrokerUrl(text)`.
 */
export type BrokerUrl = Target;

/** Opens the broker a URL of one scheme names; throws `ConfigError` (option `broker`) for a bad URL. */
export type BrokerScheme = (url: BrokerUrl) => Promise<Broker>;

/** Scheme → opener, given beside a URL. Merged over the built-in `memory` and `direct`. */
export type BrokerSchemes = Readonly<Record<string, BrokerScheme>>;

/**
 * `memory:` (or `memory://`): a new in-process `memoryBroker()`. Nothing else may follow: every
 * `openBroker("memory:")` is a broker of its own, shared by nobody else.
 */
export const memoryScheme: BrokerScheme = (url) => {
  if (url.authority !== "" || url.endpoint !== "" || [...url.params.keys()].length > 0)
    throw new ConfigError("broker", "memory: (nothing after the scheme)", redactBrokerUrl(url.text));
  return Promise.resolve(memoryBroker());
};

/** The schemes `openBroker` knows with nothing given: `memory`, and `direct` (`direct:`, `direct+local:`). */
export const BUILT_IN_BROKER_SCHEMES: BrokerSchemes = { memory: memoryScheme, direct: directScheme };

/**
 * Parses a broker URL: `scheme://authority/path?params`, or `scheme:` alone (`memory:`). Throws
 * `ConfigError` (option `broker`) for anything else, `host:port` included (a broker URL names its
 * scheme).
 */
export function parseBrokerUrl(text: string): BrokerUrl {
  const expected = 'a broker URL such as "memory:", "nats://127.0.0.1:4222" or "redis://127.0.0.1:6379"';
  if (typeof text !== "string") throw new ConfigError("broker", expected, text);
  const full = /^[a-zA-Z][a-zA-Z0-9+.-]*:$/.test(text) ? `${text}//` : text;
  let url: Target;
  try {
    url = parseTarget(full);
  } catch {
    throw new ConfigError("broker", expected, redactBrokerUrl(text));
  }
  if (url.scheme === "static") throw new ConfigError("broker", expected, redactBrokerUrl(text));
  return { ...url, text };
}

/**
 * Opens the broker `url` names, from `schemes` (given) over the built-in `memory` and `direct`. A scheme written
 * `a+b` (`direct+local:`) is looked up as `a+b`, then as `a`: the opener of `a` reads `b` from
 * `url.scheme`. Rejects with `ConfigError` (option `broker`) for a malformed URL or an unknown scheme
 * (naming the schemes it knows), and with what the backend's factory rejects with otherwise
 * (`UNAVAILABLE`/`BROKER_UNAVAILABLE` when the broker cannot be reached).
 *
 * ```ts
 * const broker = await openBroker(process.env.WEFT_BROKER ?? "memory:", { nats: natsScheme, jetstream: natsScheme });
 * ```
 */
export async function openBroker(url: string, schemes: BrokerSchemes = {}): Promise<Broker> {
  const parsed = parseBrokerUrl(url);
  const table: BrokerSchemes = { ...BUILT_IN_BROKER_SCHEMES, ...schemes };
  const base = parsed.scheme.split("+")[0]!;
  const name = Object.hasOwn(table, parsed.scheme) ? parsed.scheme : base;
  const opener = Object.hasOwn(table, name) ? table[name] : undefined;
  if (typeof opener !== "function")
    throw new ConfigError(
      "broker",
      `a URL whose scheme is one of ${Object.keys(table).join(", ")} (give others in \`schemes\`)`,
      redactBrokerUrl(url),
    );
  return opener(parsed);
}
