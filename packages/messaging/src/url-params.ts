/* The parameters of broker URLs (`?maxLength=1000&prefix=x`), as the backends' schemes read them. */
import { ConfigError } from "@weft/core";
import type { BrokerUrl } from "./broker-url.ts";

/** The URL with any `user:password@` removed, for messages and logs. */
export function redactBrokerUrl(text: string): string {
  return typeof text === "string" ? text.replace(/^([^:/?#]+:\/\/)[^@/?#]*@/, "$1") : text;
}

/**
 * Reads an optional positive-integer parameter of a broker URL (`?maxLength=10000`); throws
 * `ConfigError` naming `broker` and the parameter otherwise. For the schemes of the backend packages.
 */
export function integerParam(url: BrokerUrl, name: string): number | undefined {
  const raw = url.params.get(name);
  if (raw === null) return undefined;
  const n = Number(raw);
  if (raw.trim() === "" || !Number.isSafeInteger(n) || n <= 0)
    throw new ConfigError(`broker (parameter ${name})`, "a positive integer", raw);
  return n;
}

/** The positive-integer parameters among `names` that the URL has, by name (`integerParam` each). */
export function integerParams(url: BrokerUrl, names: readonly string[]): Record<string, number> {
  const found: Record<string, number> = {};
  for (const name of names) {
    const n = integerParam(url, name);
    if (n !== undefined) found[name] = n;
  }
  return found;
}

/** The text parameters among `names` that the URL has, by name. */
export function textParams(url: BrokerUrl, names: readonly string[]): Record<string, string> {
  const found: Record<string, string> = {};
  for (const name of names) {
    const v = url.params.get(name);
    if (v !== null) found[name] = v;
  }
  return found;
}

/** Throws `ConfigError` (option `broker`) when the URL has a parameter not in `known`. */
export function checkParams(url: BrokerUrl, known: readonly string[]): void {
  for (const key of url.params.keys())
    if (!known.includes(key))
      throw new ConfigError(
        "broker",
        `a ${url.scheme}: URL whose parameters are among ${known.length === 0 ? "(none)" : known.join(", ")}`,
        `${key} in ${redactBrokerUrl(url.text)}`,
      );
}
