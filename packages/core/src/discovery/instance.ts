import { randomUUID } from "node:crypto";
import { ConfigError } from "../errors/weft-error.ts";
import type {
  AdvertisedProtocol,
  Instance,
  InstanceChange,
  InstanceInput,
  InstancePatch,
  RegisterOptions,
} from "./registry.ts";

/** Defaults of an instance record. */
export const DEFAULT_WEIGHT = 100;

const PROTOCOLS: readonly AdvertisedProtocol[] = ["weft", "grpc", "http"];

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

function checkAddresses(v: unknown): Partial<Record<AdvertisedProtocol, string>> {
  const expected = `an object of non-empty addresses keyed by ${PROTOCOLS.join("/")}, at least one`;
  if (!isObject(v)) throw new ConfigError("addresses", expected, v);
  const out: Partial<Record<AdvertisedProtocol, string>> = {};
  for (const [key, value] of Object.entries(v)) {
    if (!PROTOCOLS.includes(key as AdvertisedProtocol))
      throw new ConfigError(`addresses.${key}`, `one of ${PROTOCOLS.join(", ")}`, key);
    if (typeof value !== "string" || value === "")
      throw new ConfigError(`addresses.${key}`, "a non-empty string", value);
    out[key as AdvertisedProtocol] = value;
  }
  if (Object.keys(out).length === 0) throw new ConfigError("addresses", expected, v);
  return out;
}

function checkWeight(v: unknown): number {
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0)
    throw new ConfigError("weight", "a finite number ≥ 0", v);
  return v;
}

function checkString(option: string, v: unknown): string {
  if (typeof v !== "string") throw new ConfigError(option, "a string", v);
  return v;
}

function checkLabels(v: unknown): Record<string, string> {
  if (!isObject(v)) throw new ConfigError("labels", "an object of string values", v);
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(v)) out[key] = checkString(`labels.${key}`, value);
  return out;
}

/** Checks a service name given to `list`/`watch`. */
export function checkService(v: unknown): string {
  if (typeof v !== "string" || v === "") throw new ConfigError("service", "a non-empty string", v);
  return v;
}

/** Validates `register`'s input and fills the defaults; throws `ConfigError` naming the bad field. */
export function toInstance(input: InstanceInput, now: number): Instance {
  if (!isObject(input)) throw new ConfigError("instance", "an object", input);
  const id = input.id ?? randomUUID();
  if (typeof id !== "string" || id === "") throw new ConfigError("id", "a non-empty string", id);
  const services = input.services as unknown;
  if (!Array.isArray(services) || services.length === 0)
    throw new ConfigError("services", "a non-empty array of service names", services);
  for (const s of services) checkService(s);
  const startedAt = input.startedAt ?? now;
  if (typeof startedAt !== "number" || !Number.isFinite(startedAt))
    throw new ConfigError("startedAt", "milliseconds since the epoch", startedAt);
  return {
    id,
    services: [...new Set(services as string[])],
    addresses: checkAddresses(input.addresses),
    weight: checkWeight(input.weight ?? DEFAULT_WEIGHT),
    version: checkString("version", input.version ?? ""),
    zone: checkString("zone", input.zone ?? ""),
    labels: checkLabels(input.labels ?? {}),
    startedAt,
  };
}

/** The record after `update(patch)`; throws `ConfigError` naming the bad field. */
export function patched(instance: Instance, patch: InstancePatch): Instance {
  if (!isObject(patch)) throw new ConfigError("patch", "an object", patch);
  return {
    ...instance,
    ...(patch.addresses !== undefined && { addresses: checkAddresses(patch.addresses) }),
    ...(patch.weight !== undefined && { weight: checkWeight(patch.weight) }),
    ...(patch.version !== undefined && { version: checkString("version", patch.version) }),
    ...(patch.zone !== undefined && { zone: checkString("zone", patch.zone) }),
    ...(patch.labels !== undefined && { labels: checkLabels(patch.labels) }),
  };
}

/** The TTL of a registration: `options.ttlMs` or the backend's default, a positive integer. */
export function ttlOf(options: RegisterOptions | undefined, fallback: number): number {
  return positiveInteger("ttlMs", options?.ttlMs ?? fallback);
}

/** An option that must be a positive safe integer; `ConfigError` naming it (and `expected`) otherwise. */
export function positiveInteger(option: string, v: unknown, expected = "a positive integer"): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v <= 0) throw new ConfigError(option, expected, v);
  return v;
}

/** Whether two records of the same id carry the same data. */
export function sameInstance(a: Instance, b: Instance): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * The change from one set of a service's instances to the next (both keyed by id), or `undefined`
 * when nothing changed.
 */
export function diffInstances(
  before: ReadonlyMap<string, Instance>,
  after: ReadonlyMap<string, Instance>,
): InstanceChange | undefined {
  const added: Instance[] = [];
  const updated: Instance[] = [];
  const removed: Instance[] = [];
  for (const [id, next] of after) {
    const prev = before.get(id);
    if (prev === undefined) added.push(next);
    else if (!sameInstance(prev, next)) updated.push(next);
  }
  for (const [id, prev] of before) if (!after.has(id)) removed.push(prev);
  return added.length + updated.length + removed.length === 0 ? undefined : { added, updated, removed };
}

/** The instances of `all` that offer `service`, keyed by id. */
export function offering(all: Iterable<Instance>, service: string): Map<string, Instance> {
  const out = new Map<string, Instance>();
  for (const instance of all) if (instance.services.includes(service)) out.set(instance.id, instance);
  return out;
}

/** The sorted names of the services `all` offers (what `Discovery.services()` returns). */
export function serviceNames(all: Iterable<Instance>): string[] {
  const names = new Set<string>();
  for (const instance of all) for (const service of instance.services) names.add(service);
  return [...names].sort();
}
