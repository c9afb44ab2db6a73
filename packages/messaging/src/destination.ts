import { ConfigError, messageType } from "@weft/core";
import type { Destination, DestinationOptions } from "./api.ts";

const TOKEN = /^[A-Za-z0-9_-]+$/;

/**
 * Declares a destination: `name` is dot-separated tokens of letters, digits, `_` and `-`
 * (`orders.placed`), which every backend can use as a subject, stream key or routing key. Throws a
 * `ConfigError` for a malformed name, a wildcard, or a partition count that is not an integer ≥ 1.
 */
export function destination<T>(name: string, options: DestinationOptions<T> = {}): Destination<T> {
  checkDestinationName(name);
  const partitions = options.partitions;
  if (partitions !== undefined && (!Number.isSafeInteger(partitions) || partitions < 1))
    throw new ConfigError("partitions", "an integer ≥ 1", partitions);
  return {
    name,
    codec: options.codec ?? messageType<T>(),
    kind: options.kind ?? "event",
    partitions,
  };
}

/** True when `name` is a destination name: dot-separated tokens of `[A-Za-z0-9_-]`, no wildcards. */
export function isDestinationName(name: unknown): name is string {
  return typeof name === "string" && name !== "" && name.split(".").every((t) => TOKEN.test(t));
}

/** Throws a `ConfigError` unless `name` is a destination name (no wildcards). */
export function checkDestinationName(name: unknown): asserts name is string {
  if (!isDestinationName(name))
    throw new ConfigError("destination", "dot-separated tokens of [A-Za-z0-9_-] (e.g. orders.placed)", name);
}

/**
 * Throws a `ConfigError` unless `pattern` is a destination name or a subscription pattern: its tokens
 * may also be `*` (any one token) and, as the last token only, `>` (one or more tokens).
 */
export function checkDestinationPattern(pattern: unknown): asserts pattern is string {
  const tokens = typeof pattern === "string" && pattern !== "" ? pattern.split(".") : [];
  const ok =
    tokens.length > 0 &&
    tokens.every((t, i) => TOKEN.test(t) || t === "*" || (t === ">" && i === tokens.length - 1));
  if (!ok)
    throw new ConfigError(
      "destination",
      "dot-separated tokens of [A-Za-z0-9_-], `*` or a last `>` (e.g. orders.*, orders.>)",
      pattern,
    );
}

/** True when `destination` matches `pattern`: `*` one token, `>` one or more trailing tokens. */
export function matches(pattern: string, destination: string): boolean {
  if (pattern === destination) return true;
  const p = pattern.split(".");
  const d = destination.split(".");
  for (let i = 0; i < p.length; i++) {
    const t = p[i]!;
    if (t === ">") return d.length > i;
    if (i >= d.length) return false;
    if (t !== "*" && t !== d[i]) return false;
  }
  return p.length === d.length;
}
