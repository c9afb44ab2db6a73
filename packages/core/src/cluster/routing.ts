/*
 * Routing filters: each narrows the nodes a call may go to, before the balancer picks one, from the
 * call's headers and each node's registry record (`node.instance`: labels, zone, id). They live in
 * the cluster, so they work the same over every protocol. docs/routing.md describes each one.
 */
import { PROPAGATED_PREFIX } from "../context/call-context.ts";
import { Code } from "../errors/code.ts";
import { Reason } from "../errors/reason.ts";
import { ConfigError, WeftError } from "../errors/weft-error.ts";
import type { Call } from "../interceptor/call.ts";
import type { TransportNode } from "../transport/node.ts";

/**
 * What the cluster does when a filter leaves no node: `"fail"` rejects the call with
 * `UNAVAILABLE`/`NO_AVAILABLE_NODE` naming the filter; `"fallback"` uses the nodes the filter was
 * given, as if it were not there.
 */
export type OnEmpty = "fail" | "fallback";

/**
 * One routing filter. `select` is called for every call the filter applies to, with the nodes left
 * by the filters before it, and reads `node.instance` each time, so a label changed at run time
 * counts from the next call. It returns `nodes` itself when it keeps them all (no copy).
 */
export interface RouteFilter {
  /** Names the filter in errors (`group`, `stress`, …). */
  readonly name: string;
  /** What happens when `select` returns no node. */
  readonly onEmpty: OnEmpty;
  /** The nodes of `nodes` that `call` may go to, in their order. */
  select<N extends TransportNode>(nodes: readonly N[], call: Call): readonly N[];
}

/**
 * The nodes `call` may go to after every filter, in order; each filter works on what the one before
 * it left. Throws `UNAVAILABLE`/`NO_AVAILABLE_NODE` when a `"fail"` filter leaves none.
 */
export function route<N extends TransportNode>(
  filters: readonly RouteFilter[],
  nodes: readonly N[],
  call: Call,
): readonly N[] {
  let current = nodes;
  for (const filter of filters) {
    const kept = filter.select(current, call);
    if (kept.length > 0) current = kept;
    else if (filter.onEmpty === "fail") throw noNodeLeft(filter.name, call);
  }
  return current;
}

/** The error of a call no node is left for after `filter`. */
export function noNodeLeft(filter: string, call: Call): WeftError {
  return new WeftError(Code.UNAVAILABLE, `no node left for ${call.method.path} after the ${filter} filter`, {
    reason: Reason.NO_AVAILABLE_NODE,
    metadata: { filter },
  });
}

/** Most keys one filter caches a subset for; past it the cache starts over (keys come from headers). */
const MAX_CACHED_KEYS = 64;

interface Subset {
  nodes: readonly TransportNode[];
  /** `node.instance` of each of `nodes` when the subset was taken: a changed record invalidates it. */
  instances: (object | undefined)[];
  kept: readonly TransportNode[];
}

/**
 * The subset of a node list kept for one key, reused while the list is the same array and no node's
 * registry record was replaced: checking costs one comparison per node and allocates nothing.
 */
class SubsetCache {
  readonly #byKey = new Map<string, Subset>();

  get<N extends TransportNode>(
    nodes: readonly N[],
    key: string,
    keep: (node: N, key: string) => boolean,
  ): readonly N[] {
    const cached = this.#byKey.get(key);
    if (cached !== undefined && cached.nodes === nodes && sameRecords(cached.instances, nodes)) {
      return cached.kept as readonly N[];
    }
    const kept = nodes.filter((n) => keep(n, key));
    if (cached === undefined && this.#byKey.size >= MAX_CACHED_KEYS) this.#byKey.clear();
    this.#byKey.set(key, { nodes, instances: nodes.map((n) => n.instance), kept });
    return kept;
  }
}

function sameRecords(instances: readonly (object | undefined)[], nodes: readonly TransportNode[]): boolean {
  for (let i = 0; i < nodes.length; i++) if (nodes[i]!.instance !== instances[i]) return false;
  return true;
}

/** True for a flag's value that means "on": present, not empty, not `0` or `false`. */
function isOn(value: string | undefined): boolean {
  return value !== undefined && value !== "" && value !== "0" && value !== "false";
}

function checkOnEmpty(value: unknown): OnEmpty {
  if (value !== "fail" && value !== "fallback")
    throw new ConfigError("onEmpty", '"fail" or "fallback"', value);
  return value;
}

function checkName(option: string, value: unknown): string {
  if (typeof value !== "string" || value === "") throw new ConfigError(option, "a non-empty string", value);
  return option === "header" ? value.toLowerCase() : value;
}

/** Options of a label-matching filter (`groupRoute`, `tierRoute`). */
export interface LabelRouteOptions {
  /** The request header carrying the call's tag. Default `weft-ctx-<label>`, so it follows every hop. */
  header?: string;
  /** The instance label compared with the tag. Default `group` (`groupRoute`), `tier` (`tierRoute`). */
  label?: string;
  /**
   * Where an untagged call goes: `"untagged"` (default) to instances without the label only,
   * `"all"` to every instance.
   */
  untagged?: "untagged" | "all";
  /** When no instance carries the call's tag. Default `"fallback"`: the set this filter was given. */
  onEmpty?: OnEmpty;
}

class LabelRoute implements RouteFilter {
  readonly name: string;
  readonly onEmpty: OnEmpty;
  readonly #header: string;
  readonly #label: string;
  readonly #untaggedToAll: boolean;
  readonly #cache = new SubsetCache();
  readonly #keep = (node: TransportNode, tag: string): boolean =>
    (node.instance?.labels[this.#label] ?? "") === tag;

  constructor(name: string, options: LabelRouteOptions) {
    this.name = name;
    this.#label = checkName("label", options.label ?? name);
    this.#header = checkName("header", options.header ?? `${PROPAGATED_PREFIX}${this.#label}`);
    const untagged = options.untagged ?? "untagged";
    if (untagged !== "untagged" && untagged !== "all") {
      throw new ConfigError("untagged", '"untagged" or "all"', untagged);
    }
    this.#untaggedToAll = untagged === "all";
    this.onEmpty = checkOnEmpty(options.onEmpty ?? "fallback");
  }

  select<N extends TransportNode>(nodes: readonly N[], call: Call): readonly N[] {
    const tag = call.headers.get(this.#header) ?? "";
    if (tag === "" && this.#untaggedToAll) return nodes;
    return this.#cache.get(nodes, tag, this.#keep);
  }
}

/**
 * A/B groups: a call tagged group `X` (header `weft-ctx-group: X`, propagated to every hop) goes to
 * instances labelled `group: X`; an untagged call goes to instances without a `group` label (or to
 * all, with `untagged: "all"`). When no instance carries the call's group the call falls back to the
 * set the filter was given (`onEmpty`, default `"fallback"`; `"fail"` forces the group).
 */
export function groupRoute(options: LabelRouteOptions = {}): RouteFilter {
  return new LabelRoute("group", { label: "group", ...options });
}

/**
 * VIP tiers: a call tagged tier `X` (header `weft-ctx-tier`) goes to instances labelled `tier: X`,
 * an untagged call to instances without a `tier` label, so reserved capacity stays reserved. Same
 * options and defaults as `groupRoute` (falls back to the set given when a tier has no instance).
 */
export function tierRoute(options: LabelRouteOptions = {}): RouteFilter {
  return new LabelRoute("tier", { label: "tier", ...options });
}

/** Options of `stressRoute`. */
export interface StressRouteOptions {
  /** The flag's request header. Default `weft-ctx-stress`, so the flag set at the edge follows every hop. */
  header?: string;
  /** The instance label marking a stress-test instance. Default `stress`. */
  label?: string;
  /** Only `"fail"` (the default): stress traffic never falls back onto normal instances. */
  onEmpty?: "fail";
}

/**
 * Full-link stress testing: a call flagged stress (header `weft-ctx-stress` set to anything but
 * empty, `0` or `false`) goes only to instances labelled `stress` (same values), and every other
 * call only to instances without it, so normal traffic never reaches a stress instance. Both ways
 * fail with `NO_AVAILABLE_NODE` when nothing is left: this filter never falls back.
 */
export function stressRoute(options: StressRouteOptions = {}): RouteFilter {
  if (options.onEmpty !== undefined && options.onEmpty !== "fail") {
    throw new ConfigError("onEmpty", '"fail" (stress traffic never falls back)', options.onEmpty);
  }
  const label = checkName("label", options.label ?? "stress");
  const header = checkName("header", options.header ?? `${PROPAGATED_PREFIX}stress`);
  const cache = new SubsetCache();
  const keep = (node: TransportNode, key: string): boolean =>
    isOn(node.instance?.labels[label]) === (key === "stress");
  return {
    name: "stress",
    onEmpty: "fail",
    select: (nodes, call) => cache.get(nodes, isOn(call.headers.get(header)) ? "stress" : "normal", keep),
  };
}

/** Options of `pinRoute`. */
export interface PinRouteOptions {
  /** The request header naming the instance, by registry id or by address. Default `weft-debug-instance`. */
  header?: string;
  /** When the named instance is not among the nodes. Default `"fail"`: a debug call never lands elsewhere. */
  onEmpty?: OnEmpty;
}

/**
 * Debug pinning: a call whose header `weft-debug-instance` names an instance (its registry `id`, or
 * the node's address) goes to that instance only; calls without the header are not filtered. Not
 * propagated (the next hop is another service). Fails with `NO_AVAILABLE_NODE` when the instance is
 * not there, unless `onEmpty: "fallback"`.
 */
export function pinRoute(options: PinRouteOptions = {}): RouteFilter {
  const header = checkName("header", options.header ?? "weft-debug-instance");
  const onEmpty = checkOnEmpty(options.onEmpty ?? "fail");
  const cache = new SubsetCache();
  const keep = (node: TransportNode, target: string): boolean =>
    node.address === target || node.instance?.id === target;
  return {
    name: "pin",
    onEmpty,
    select: (nodes, call) => {
      const target = call.headers.get(header);
      return target === undefined || target === "" ? nodes : cache.get(nodes, target, keep);
    },
  };
}

/** Options of `zoneRoute`. */
export interface ZoneRouteOptions {
  /** This client's zone, compared with each instance's `zone`. Required, non-empty. */
  zone: string;
  /**
   * The fewest nodes of the zone, not in reconnect backoff, that keep calls in the zone; with fewer,
   * calls go to every zone. An integer ≥ 1; default 1.
   */
  minHealthy?: number;
}

/**
 * Zone affinity: calls go to instances of the client's zone while at least `minHealthy` of them are
 * not backing off, and to instances of every zone otherwise (fallback is built in, so the filter
 * never leaves a call without nodes).
 */
export function zoneRoute(options: ZoneRouteOptions): RouteFilter {
  const zone = options?.zone;
  if (typeof zone !== "string" || zone === "") throw new ConfigError("zone", "a non-empty string", zone);
  const minHealthy = options.minHealthy ?? 1;
  if (!Number.isInteger(minHealthy) || minHealthy < 1) {
    throw new ConfigError("minHealthy", "an integer ≥ 1", options.minHealthy);
  }
  const cache = new SubsetCache();
  const keep = (node: TransportNode): boolean => node.instance?.zone === zone;
  return {
    name: "zone",
    onEmpty: "fallback",
    select: (nodes) => {
      let healthy = 0;
      for (const node of nodes) if (node.instance?.zone === zone && !node.backingOff) healthy++;
      return healthy >= minHealthy ? cache.get(nodes, zone, keep) : nodes;
    },
  };
}

/** Checks a `routing` option: an array of filters. */
export function checkRouting(option: string, value: unknown): readonly RouteFilter[] {
  if (
    !Array.isArray(value) ||
    !value.every(
      (f: Partial<RouteFilter> | null) => typeof f?.select === "function" && typeof f.name === "string",
    )
  ) {
    throw new ConfigError(option, "an array of route filters (groupRoute(), stressRoute(), …)", value);
  }
  for (const f of value as RouteFilter[]) checkOnEmpty(f.onEmpty);
  return value as readonly RouteFilter[];
}
