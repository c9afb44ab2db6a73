/*
 * Membership: the node list of a cluster that follows a registry. It watches one service, keeps one
 * node per instance that advertises the transport's protocol address, and replaces the cluster's
 * list (a new frozen array) on every change. It owns the outage policy (keep the last known set,
 * re-watch with backoff, report once, drop the set after `maxStalenessMs`), the grace before an
 * empty set is applied, warm-up weights, and the retirement of nodes that went away.
 */

import { backoffDelay } from "../call/backoff.ts";
import { armDeadline, type DeadlineTimer } from "../call/deadline.ts";
import type { AdvertisedProtocol, Discovery, Instance, InstanceChange } from "../discovery/registry.ts";
import { openDiscovery, parseTarget, type Schemes } from "../discovery/target.ts";
import { Code } from "../errors/code.ts";
import { Reason } from "../errors/reason.ts";
import { ConfigError, WeftError } from "../errors/weft-error.ts";
import { CONSOLE_LOGGER, emit, type Logger, loggerOption, type Telemetry } from "../telemetry/telemetry.ts";
import type { TransportNode } from "../transport/node.ts";
import { type NodeSource, noNode } from "./cluster.ts";

/** How a cluster follows its registry: the `discovery` option of `createTcpTransport` and `createGrpcTransport`. */
export interface DiscoveryPolicy {
  /**
   * How long the last known set is used while the registry cannot be watched, in milliseconds; after
   * it, the set is dropped and calls fail `UNAVAILABLE`/`REGISTRY_UNAVAILABLE` until the watch
   * recovers. Default `Infinity`: the last known set is kept for as long as the outage lasts.
   */
  maxStalenessMs?: number;
  /**
   * How long the registry must report no instance before the cluster empties its list, in
   * milliseconds; an instance pushed in between cancels it. A set that was empty from the start is
   * applied at once. Default 5,000; 0 applies an empty set at once.
   */
  emptyGraceMs?: number;
  /** Waits between re-watches after the watch failed: exponential with ±20 % jitter. Defaults 500 ms / 30 s. */
  retry?: { initialDelayMs?: number; maxDelayMs?: number };
  /**
   * Warm-up window in milliseconds: an instance whose `startedAt` is less than this ago gets
   * `weight × (0.1 + 0.9 × uptime / warmupMs)`, recomputed about every `min(1 s, warmupMs / 10)`.
   * Default 0: off.
   */
  warmupMs?: number;
  /**
   * A node whose instance went away takes no new calls; it is closed once its calls in flight have
   * ended, and at the latest after this many milliseconds (cutting the calls still running). Default 30,000.
   */
  retireGraceMs?: number;
  /**
   * Told once when the watch fails (not per retry, not per call), with why. Default: one
   * `logger.warn` line.
   */
  onDiscoveryError?: (error: WeftError) => void;
  /** Told once when a failed watch works again. Default: one `logger.warn` line. */
  onDiscoveryRecovered?: () => void;
  /**
   * Where the default `onDiscoveryError`/`onDiscoveryRecovered` write their line. Default
   * `CONSOLE_LOGGER` (`console.warn`); a pino logger fits as it is.
   */
  logger?: Logger;
}

/**
 * Builds the node of one address; `service` is the service it was found as (a registry's), or
 * `undefined` for a static address, for the node's telemetry (`peerService`).
 */
export type NodeFactory<N extends TransportNode> = (address: string, service: string | undefined) => N;

interface Settings {
  maxStalenessMs: number;
  emptyGraceMs: number;
  initialDelayMs: number;
  maxDelayMs: number;
  warmupMs: number;
  retireGraceMs: number;
  onError: (error: WeftError) => void;
  onRecovered: () => void;
}

function msOption(name: string, value: unknown, fallback: number, infinite = false): number {
  if (value === undefined) return fallback;
  if (
    typeof value !== "number" ||
    value < 0 ||
    Number.isNaN(value) ||
    (!infinite && !Number.isFinite(value))
  ) {
    throw new ConfigError(`discovery.${name}`, `milliseconds ≥ 0${infinite ? " or Infinity" : ""}`, value);
  }
  return value;
}

function callbackOption<F>(name: string, value: unknown, fallback: F): F {
  if (value === undefined) return fallback;
  if (typeof value !== "function") throw new ConfigError(`discovery.${name}`, "a function", value);
  return value as F;
}

function settingsOf(policy: DiscoveryPolicy | undefined, service: string): Settings {
  const p = policy ?? {};
  if (typeof p !== "object" || p === null) throw new ConfigError("discovery", "an object", policy);
  const initialDelayMs = msOption("retry.initialDelayMs", p.retry?.initialDelayMs, 500);
  const logger = loggerOption("discovery.logger", p.logger, CONSOLE_LOGGER);
  return {
    maxStalenessMs: msOption("maxStalenessMs", p.maxStalenessMs, Number.POSITIVE_INFINITY, true),
    emptyGraceMs: msOption("emptyGraceMs", p.emptyGraceMs, 5_000),
    initialDelayMs,
    maxDelayMs: Math.max(initialDelayMs, msOption("retry.maxDelayMs", p.retry?.maxDelayMs, 30_000)),
    warmupMs: msOption("warmupMs", p.warmupMs, 0),
    retireGraceMs: msOption("retireGraceMs", p.retireGraceMs, 30_000),
    onError: callbackOption("onDiscoveryError", p.onDiscoveryError, (error: WeftError) =>
      logger.warn(
        `weft client: watching ${service} failed (${error.rawMessage}); using the last known instances`,
      ),
    ),
    onRecovered: callbackOption("onDiscoveryRecovered", p.onDiscoveryRecovered, () =>
      logger.warn(`weft client: watching ${service} works again`),
    ),
  };
}

/** Where the membership stands: no set yet, a set known, or no usable set (registry down, set too old). */
type State = "pending" | "known" | "unavailable";

const EMPTY: readonly never[] = Object.freeze([]);

/**
 * The nodes of `service` as `discovery` reports them: one node per instance advertising a
 * `protocol` address, built by `factory`, keyed by that address. A `NodeSource` for `Cluster`.
 */
export class Membership<N extends TransportNode> implements NodeSource {
  /** The current nodes, in a stable order; a new frozen array after every change. */
  nodes: readonly N[] = EMPTY;
  /** Pending until the first set is known or the first watch fails; `undefined` after. */
  firstSet: Promise<void> | undefined;
  readonly #discovery: Discovery;
  readonly #service: string;
  readonly #protocol: AdvertisedProtocol;
  readonly #factory: NodeFactory<N>;
  readonly #settings: Settings;
  #state: State = "pending";
  #settleFirst: (() => void) | undefined;
  /** The instances the registry reports now, by id. */
  #known = new Map<string, Instance>();
  /** The live nodes, by address. */
  #byAddress = new Map<string, N>();
  /** Retired nodes, and when they are closed at the latest. */
  readonly #retiring = new Map<N, number>();
  #iterator: AsyncIterator<InstanceChange> | undefined;
  /** The next item of the watch is a whole set (the first after watching (again)). */
  #whole = true;
  #failures = 0;
  #outage = false;
  /** When the current outage began (`Date.now()`), for `discovery.recovered`. */
  #outageSince = 0;
  readonly #telemetry: Telemetry | undefined;
  #closed = false;
  #retryTimer: DeadlineTimer | undefined;
  #emptyTimer: DeadlineTimer | undefined;
  #staleTimer: DeadlineTimer | undefined;
  #tickTimer: DeadlineTimer | undefined;

  readonly #release: (() => Promise<void>) | undefined;

  /**
   * Starts watching `service` on `discovery`. `release` runs on `close` (the registry the cluster
   * opened for its target); a registry given by the user is left open.
   */
  constructor(setup: {
    discovery: Discovery;
    service: string;
    protocol: AdvertisedProtocol;
    factory: NodeFactory<N>;
    policy?: DiscoveryPolicy | undefined;
    release?: () => Promise<void>;
    /** Receives `discovery.changed`, `discovery.outage` and `discovery.recovered`. */
    telemetry?: Telemetry | undefined;
  }) {
    const { discovery, service } = setup;
    if (typeof discovery?.watch !== "function")
      throw new ConfigError("discoveryFrom", "a Discovery (with watch(service))", discovery);
    if (typeof service !== "string" || service === "")
      throw new ConfigError("service", "a non-empty service name", service);
    this.#discovery = discovery;
    this.#service = service;
    this.#protocol = setup.protocol;
    this.#factory = setup.factory;
    this.#settings = settingsOf(setup.policy, service);
    this.#release = setup.release;
    this.#telemetry = setup.telemetry;
    this.firstSet = new Promise((resolve) => {
      this.#settleFirst = resolve;
    });
    this.#watch();
  }

  /** Why a call finds no node: the set is known and empty, or there is no usable set. */
  noNodeError(): WeftError {
    if (this.#state === "unavailable") {
      return new WeftError(Code.UNAVAILABLE, `the registry of ${this.#service} cannot be watched`, {
        reason: Reason.REGISTRY_UNAVAILABLE,
      });
    }
    return noNode(`no instance of ${this.#service} offers a ${this.#protocol} address`);
  }

  /** A node failed to connect: asks a polling registry to re-read the service (it rate-limits). */
  nodeFailed(_node: TransportNode): void {
    this.#discovery.refresh?.(this.#service);
  }

  /** Stops watching and closes every node, retired ones included. The registry itself is left open. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const timer of [this.#retryTimer, this.#emptyTimer, this.#staleTimer, this.#tickTimer])
      timer?.cancel();
    this.#stopWatch();
    this.#settle();
    const nodes = [...this.#byAddress.values(), ...this.#retiring.keys()];
    this.#byAddress.clear();
    this.#retiring.clear();
    this.nodes = EMPTY;
    await Promise.all([...nodes.map((node) => node.close()), this.#release?.()]);
  }

  #watch(): void {
    this.#retryTimer = undefined;
    if (this.#closed) return;
    let iterator: AsyncIterator<InstanceChange>;
    try {
      iterator = this.#discovery.watch(this.#service)[Symbol.asyncIterator]();
    } catch (e) {
      this.#failed(e);
      return;
    }
    this.#iterator = iterator;
    this.#whole = true;
    this.#pull(iterator);
  }

  #pull(iterator: AsyncIterator<InstanceChange>): void {
    iterator.next().then(
      (item) => {
        if (this.#closed || iterator !== this.#iterator) return;
        if (item.done === true) this.#failed(new Error("the watch ended"));
        else {
          this.#apply(item.value);
          this.#pull(iterator);
        }
      },
      (error: unknown) => {
        if (!this.#closed && iterator === this.#iterator) this.#failed(error);
      },
    );
  }

  #stopWatch(): void {
    const iterator = this.#iterator;
    this.#iterator = undefined;
    iterator?.return?.().then(undefined, () => {});
  }

  /** The watch failed: keep the set, report the outage once, watch again after a backoff. */
  #failed(error: unknown): void {
    this.#stopWatch();
    this.#failures++;
    if (!this.#outage) {
      this.#outage = true;
      this.#outageSince = Date.now();
      const reported = new WeftError(Code.UNAVAILABLE, `watching ${this.#service} failed`, {
        reason: Reason.REGISTRY_UNAVAILABLE,
        cause: error,
      });
      if (this.#state === "pending") {
        this.#state = "unavailable";
        this.#settle();
      } else if (this.#state === "known" && Number.isFinite(this.#settings.maxStalenessMs)) {
        this.#staleTimer = armDeadline(Date.now() + this.#settings.maxStalenessMs, dropStale, this);
      }
      this.#report(() => this.#settings.onError(reported));
      if (this.#telemetry !== undefined) {
        const reason = Reason.REGISTRY_UNAVAILABLE;
        emit(this.#telemetry, "discovery.outage", { service: this.#service, reason });
      }
    }
    const { initialDelayMs, maxDelayMs } = this.#settings;
    const delay = backoffDelay(this.#failures, { initialDelayMs, maxDelayMs });
    this.#retryTimer = armDeadline(Date.now() + delay, rewatch, this);
  }

  /** The outage lasted `maxStalenessMs`: the cached set is dropped. */
  dropStale(): void {
    this.#staleTimer = undefined;
    this.#state = "unavailable";
    this.#emptyTimer?.cancel();
    this.#emptyTimer = undefined;
    this.#setNodes([]);
  }

  /** Re-watches after a backoff. */
  rewatch(): void {
    this.#watch();
  }

  #apply(change: InstanceChange): void {
    if (this.#whole) {
      this.#whole = false;
      this.#known = new Map();
      this.#failures = 0;
      this.#staleTimer?.cancel();
      this.#staleTimer = undefined;
      if (this.#outage) {
        this.#outage = false;
        this.#report(this.#settings.onRecovered);
        if (this.#telemetry !== undefined) {
          const durationMs = Date.now() - this.#outageSince;
          emit(this.#telemetry, "discovery.recovered", { service: this.#service, durationMs });
        }
      }
    }
    for (const instance of change.removed) this.#known.delete(instance.id);
    for (const instance of change.added) this.#known.set(instance.id, instance);
    for (const instance of change.updated) this.#known.set(instance.id, instance);
    const first = this.#state !== "known";
    this.#state = "known";
    const offered = [...this.#known.values()].filter((i) => i.addresses[this.#protocol] !== undefined);
    if (offered.length === 0 && this.nodes.length > 0 && this.#settings.emptyGraceMs > 0 && !first) {
      this.#emptyTimer ??= armDeadline(Date.now() + this.#settings.emptyGraceMs, applyEmpty, this);
    } else {
      this.#emptyTimer?.cancel();
      this.#emptyTimer = undefined;
      this.#setNodes(offered);
    }
    this.#settle();
  }

  /** The registry stayed empty for `emptyGraceMs`. */
  applyEmpty(): void {
    this.#emptyTimer = undefined;
    this.#setNodes([]);
  }

  /** Makes the node list match `instances`: keeps nodes by address, builds new ones, retires the rest. */
  #setNodes(instances: readonly Instance[]): void {
    const now = Date.now();
    const next = new Map<string, N>();
    for (const instance of instances) {
      const address = instance.addresses[this.#protocol]!;
      if (next.has(address)) continue;
      const node = this.#byAddress.get(address) ?? this.#build(address);
      if (node === undefined) continue;
      node.instance = instance;
      node.weight = this.#weightOf(instance, now);
      next.set(address, node);
    }
    let removed = 0;
    for (const [address, node] of this.#byAddress) {
      if (!next.has(address)) {
        removed++;
        this.#retire(node, now);
      }
    }
    const order = [...this.nodes.filter((node) => next.get(node.address) === node)];
    const added = next.size - order.length;
    for (const node of next.values()) if (!order.includes(node)) order.push(node);
    this.#byAddress = next;
    this.nodes = Object.freeze(order);
    this.#arm();
    if (this.#telemetry !== undefined && added + removed > 0) {
      emit(this.#telemetry, "discovery.changed", {
        service: this.#service,
        protocol: this.#protocol,
        nodes: order.length,
        added,
        removed,
      });
    }
  }

  /** The node of `address`, or `undefined` when the registry advertises an address it cannot dial. */
  #build(address: string): N | undefined {
    try {
      return this.#factory(address, this.#service);
    } catch {
      return undefined;
    }
  }

  /** The weight of `instance` at `now`, warm-up included. */
  #weightOf(instance: Instance, now: number): number {
    const { warmupMs } = this.#settings;
    const uptime = now - instance.startedAt;
    if (warmupMs === 0 || uptime >= warmupMs) return instance.weight;
    return instance.weight * (0.1 + (0.9 * Math.max(0, uptime)) / warmupMs);
  }

  #retire(node: N, now: number): void {
    if (node.inFlight === 0) this.#close(node);
    else this.#retiring.set(node, now + this.#settings.retireGraceMs);
  }

  #close(node: N): void {
    this.#retiring.delete(node);
    node.close().then(undefined, () => {});
  }

  /** Arms the coarse tick while nodes warm up or retire. */
  #arm(): void {
    if (this.#tickTimer !== undefined || this.#closed) return;
    const warming = this.#warming(Date.now());
    if (!warming && this.#retiring.size === 0) return;
    const { warmupMs } = this.#settings;
    const step = warming ? Math.max(10, Math.min(1_000, warmupMs / 10)) : 1_000;
    this.#tickTimer = armDeadline(Date.now() + step, tick, this);
  }

  #warming(now: number): boolean {
    if (this.#settings.warmupMs === 0) return false;
    for (const node of this.nodes) if (now - node.instance!.startedAt < this.#settings.warmupMs) return true;
    return false;
  }

  /** Recomputes warm-up weights (a new list when one changed) and closes retired nodes that are done. */
  tick(): void {
    this.#tickTimer = undefined;
    const now = Date.now();
    let changed = false;
    for (const node of this.nodes) {
      const weight = this.#weightOf(node.instance!, now);
      if (weight !== node.weight) {
        node.weight = weight;
        changed = true;
      }
    }
    // a new array, so balancers that cache per list (the consistent-hash ring) see the new weights
    if (changed) this.nodes = Object.freeze([...this.nodes]);
    for (const [node, closeAt] of this.#retiring) {
      if (node.inFlight === 0 || now >= closeAt) this.#close(node);
    }
    this.#arm();
  }

  #settle(): void {
    const settle = this.#settleFirst;
    if (settle === undefined) return;
    this.#settleFirst = undefined;
    this.firstSet = undefined;
    settle();
  }

  #report(callback: () => void): void {
    try {
      callback();
    } catch {
      // a reporting callback must not break the watch
    }
  }
}

function rewatch(m: Membership<TransportNode>): void {
  m.rewatch();
}
function dropStale(m: Membership<TransportNode>): void {
  m.dropStale();
}
function applyEmpty(m: Membership<TransportNode>): void {
  m.applyEmpty();
}
function tick(m: Membership<TransportNode>): void {
  m.tick();
}

/** How a transport names the servers it calls: the options its cluster's node list comes from. */
export interface TargetOptions {
  /**
   * What to call: `host:port` (one static address) or a URI naming a service in a registry,
   * `scheme://authority/service` (`local:///catalog.v1.Catalog?dir=/srv/registry`), opened through
   * `schemes` over the built-in ones and closed with the transport. Give `target`, `address` or
   * `discoveryFrom`.
   */
  target?: string;
  /** Static `host:port`, or a list of them: the same as a `host:port` target. */
  address?: string | readonly string[];
  /** Schemes for `target` URIs beside the built-in `local` (e.g. `etcd` from `@weft/registry-etcd`). */
  schemes?: Schemes;
  /**
   * A registry the caller already holds (`createMemoryRegistry()`, an etcd registry): the transport
   * follows `service` on it, instead of opening one for a `target`, and leaves it open on `close`.
   */
  discoveryFrom?: Discovery;
  /** The service followed on `discoveryFrom`. Required with it, not allowed without it. */
  service?: string;
  /** How the node list follows the registry: outage policy, empty-set grace, warm-up, retirement. */
  discovery?: DiscoveryPolicy;
}

/**
 * The node list `options` name: the nodes of static addresses, or a `Membership` following a
 * registry. `protocol` picks the address of each instance the transport dials; `factory` builds the
 * node of an address. Throws `ConfigError` naming the option at fault.
 */
export function nodesOf<N extends TransportNode>(
  options: TargetOptions,
  protocol: AdvertisedProtocol,
  factory: NodeFactory<N>,
  telemetry?: Telemetry,
): readonly N[] | Membership<N> {
  const { target, address, discoveryFrom, service } = options;
  const given = [target, address, discoveryFrom].filter((v) => v !== undefined).length;
  if (given !== 1) {
    throw new ConfigError("target", "exactly one of target, address and discoveryFrom", {
      target,
      address,
      discoveryFrom: discoveryFrom === undefined ? undefined : "(a Discovery)",
    });
  }
  if (discoveryFrom === undefined && service !== undefined)
    throw new ConfigError("service", "absent unless discoveryFrom is given", service);
  if (discoveryFrom !== undefined) {
    const setup = { discovery: discoveryFrom, service: service as string, protocol, factory, telemetry };
    return new Membership({ ...setup, policy: options.discovery });
  }
  if (address !== undefined) {
    const list = typeof address === "string" ? [address] : address;
    if (!Array.isArray(list) || list.length === 0) {
      throw new ConfigError("address", 'a "host:port" string or a non-empty list of them', address);
    }
    return list.map((a: string) => factory(a, undefined));
  }
  const parsed = parseTarget(target as string);
  if (parsed.scheme === "static") return [factory(parsed.endpoint, undefined)];
  if (parsed.endpoint === "") throw new ConfigError("target", "a URI naming a service (its path)", target);
  const opened = openDiscovery(parsed, options.schemes);
  try {
    return new Membership({
      discovery: opened.discovery,
      service: parsed.endpoint,
      protocol,
      factory,
      policy: options.discovery,
      release: () => opened.close(),
      telemetry,
    });
  } catch (e) {
    opened.close().then(undefined, () => {});
    throw e;
  }
}
