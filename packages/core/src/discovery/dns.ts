/*
 * DNS discovery: platform discovery (a Kubernetes headless service, a Consul DNS interface, plain
 * records) through `node:dns/promises`, nothing to install. It can only resolve the names it is
 * given, so it is a `Discovery` without `services()`, and it polls: every `intervalMs`, and at once
 * (rate-limited) when a client calls `refresh(service)` after failing to reach an instance.
 */
import { Resolver } from "node:dns/promises";
import { isIP } from "node:net";
import { armDeadline, type DeadlineTimer } from "../call/deadline.ts";
import { Code } from "../errors/code.ts";
import { Reason } from "../errors/reason.ts";
import { ConfigError, WeftError } from "../errors/weft-error.ts";
import { parseAddress } from "../transport/tcp-node.ts";
import { checkService, DEFAULT_WEIGHT, positiveInteger } from "./instance.ts";
import { probe, type RegistryProbe } from "./probe.ts";
import type { Discovery, Instance, InstanceChange } from "./registry.ts";
import { ServiceWatch } from "./watch.ts";

export interface DnsDiscoveryOptions {
  /**
   * The DNS servers to ask, in order: `ip` or `ip:port` (IPv6 as `[::1]:53`). Default: the system's
   * (`/etc/resolv.conf`).
   */
  servers?: readonly string[];
  /** How often a watched name is resolved again, after the previous resolution ended: ms, default 30,000. */
  intervalMs?: number;
  /**
   * The least time between two resolutions of a watched name that `refresh` may cause: ms, default
   * 1,000. A `refresh` sooner than that is carried out when the time is up (several fold into one).
   */
  minRefreshIntervalMs?: number;
  /** How long one query waits for an answer before it is sent again: ms, default 2,000. */
  timeoutMs?: number;
  /** How many times a query is sent to each server before the resolution fails: default 2. */
  tries?: number;
  /**
   * SRV names: `priority: "lowest"` (default) keeps only the records of the lowest priority value,
   * as RFC 2782 asks (higher ones are fallbacks); `"all"` keeps every record whatever its priority.
   */
  srv?: { priority?: "lowest" | "all" };
  /** The clock, milliseconds since the epoch; default `Date.now`. For tests. */
  now?: () => number;
}

/** The defaults of `createDnsDiscovery`. */
export const DNS_DISCOVERY_DEFAULTS = {
  intervalMs: 30_000,
  minRefreshIntervalMs: 1_000,
  timeoutMs: 2_000,
  tries: 2,
  srvPriority: "lowest",
} as const;

/** The DNS backend: a `Discovery` with `refresh`, and `close`. */
export interface DnsDiscovery extends Discovery {
  /**
   * Resolves `service` again now for its watches, or as soon as `minRefreshIntervalMs` since its last
   * resolution allows. Does nothing for a name nobody watches.
   */
  refresh(service: string): void;
  /** Ends every watch and cancels the queries in flight; idempotent. */
  close(): Promise<void>;
}

/** What a service name asks DNS for. */
type Query =
  | { readonly kind: "address"; readonly host: string; readonly port: number }
  | { readonly kind: "srv"; readonly name: string };

const DNS_NAME = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?$/;

/** Answers that mean "no such records": an empty set, not a failure. */
const NO_RECORDS: ReadonlySet<string> = new Set(["ENODATA", "ENOTFOUND"]);

/**
 * `host:port` → A and AAAA records of `host` (an IP literal is taken as is); a name without a port →
 * its SRV records. Throws `ConfigError` (option `service`) for anything else.
 */
function queryOf(service: string): Query {
  checkService(service);
  if (service.includes(":")) {
    try {
      const { host, port } = parseAddress(service);
      return { kind: "address", host, port };
    } catch {
      throw new ConfigError("service", '"host:port" (A/AAAA) or a DNS name for SRV', service);
    }
  }
  if (!DNS_NAME.test(service))
    throw new ConfigError("service", '"host:port" (A/AAAA) or a DNS name for SRV', service);
  return { kind: "srv", name: service };
}

/**
 * A `Discovery` over DNS. The service names it resolves:
 *
 * - `host:port` (`catalog.internal:4000`): the A and AAAA records of `host`, each an instance at
 *   that port.
 * - a name without a port (`_grpc._tcp.catalog.internal`): its SRV records, each target's A and
 *   AAAA records an instance at the record's port, weighted by the record's weight.
 *
 * An instance's id is its address `ip:port` (`[ip6]:port`), so an address that stays in the answer
 * stays the same instance. DNS cannot say which protocol a port serves: `addresses` gives the
 * address for every protocol. `zone` is `""`, `labels` `{}`, `version` `""`; `startedAt` is when the
 * watch first saw the address (for `list`, the time of the call).
 *
 * A name that does not exist, or has no such records, is an empty set. A resolution that fails (no
 * server answers, SERVFAIL, REFUSED, a timeout) is `UNAVAILABLE` with reason `REGISTRY_UNAVAILABLE`:
 * `list` rejects with it, and a watch throws it only if its first resolution fails; afterwards it
 * keeps its last set and tries again at its next interval (or `refresh`).
 */
export function createDnsDiscovery(options: DnsDiscoveryOptions = {}): DnsDiscovery {
  if (typeof options !== "object" || options === null) throw new ConfigError("options", "an object", options);
  const intervalMs = positiveInteger("intervalMs", options.intervalMs ?? DNS_DISCOVERY_DEFAULTS.intervalMs);
  const minRefreshIntervalMs = options.minRefreshIntervalMs ?? DNS_DISCOVERY_DEFAULTS.minRefreshIntervalMs;
  if (
    typeof minRefreshIntervalMs !== "number" ||
    !Number.isSafeInteger(minRefreshIntervalMs) ||
    minRefreshIntervalMs < 0
  )
    throw new ConfigError("minRefreshIntervalMs", "an integer ≥ 0", minRefreshIntervalMs);
  const timeoutMs = positiveInteger("timeoutMs", options.timeoutMs ?? DNS_DISCOVERY_DEFAULTS.timeoutMs);
  const tries = positiveInteger("tries", options.tries ?? DNS_DISCOVERY_DEFAULTS.tries);
  const priority = options.srv?.priority ?? DNS_DISCOVERY_DEFAULTS.srvPriority;
  if (priority !== "lowest" && priority !== "all")
    throw new ConfigError("srv.priority", '"lowest" or "all"', priority);
  const now = options.now ?? (() => Date.now());
  if (typeof now !== "function") throw new ConfigError("now", "a function", now);
  const resolver = new Resolver({ timeout: timeoutMs, tries });
  if (options.servers !== undefined) {
    const servers = options.servers as unknown;
    if (!Array.isArray(servers) || servers.length === 0)
      throw new ConfigError("servers", 'a non-empty array of "ip" or "ip:port"', servers);
    try {
      resolver.setServers(servers as string[]);
    } catch {
      throw new ConfigError("servers", 'a non-empty array of "ip" or "ip:port"', servers);
    }
  }
  return new Dns(resolver, { intervalMs, minRefreshIntervalMs, allPriorities: priority === "all", now });
}

interface Settings {
  readonly intervalMs: number;
  readonly minRefreshIntervalMs: number;
  readonly allPriorities: boolean;
  readonly now: () => number;
}

/** A failed resolution as Weft reports it. */
function unavailable(service: string, error: unknown): WeftError {
  if (error instanceof WeftError) return error;
  const detail = (error as { code?: unknown }).code ?? (error instanceof Error ? error.message : error);
  return new WeftError(Code.UNAVAILABLE, `dns: resolving ${service}: ${String(detail)}`, {
    reason: Reason.REGISTRY_UNAVAILABLE,
    cause: error,
  });
}

/** `[]` for an answer that means "no records"; any other error is rethrown. */
function noRecords(error: unknown): never[] {
  if (NO_RECORDS.has((error as { code?: unknown }).code as string)) return [];
  throw error;
}

const addressOf = (ip: string, port: number): string =>
  ip.includes(":") ? `[${ip}]:${port}` : `${ip}:${port}`;

class Dns implements DnsDiscovery {
  readonly #resolver: Resolver;
  readonly #settings: Settings;
  /** The watched names, each with its one timer and resolution shared by its watches. */
  readonly #watched = new Map<string, WatchedName>();
  #closed = false;

  readonly [probe]: RegistryProbe = {
    activeWatches: () => {
      let n = 0;
      for (const name of this.#watched.values()) n += name.watches.size;
      return n;
    },
  };

  constructor(resolver: Resolver, settings: Settings) {
    this.#resolver = resolver;
    this.#settings = settings;
  }

  async list(service: string): Promise<Instance[]> {
    const query = queryOf(service);
    return [...(await this.resolve(service, query)).values()];
  }

  watch(service: string): AsyncIterable<InstanceChange> {
    const query = queryOf(service);
    let name = this.#watched.get(service);
    if (name === undefined && !this.#closed) {
      name = new WatchedName(this, service, query, this.#settings);
      this.#watched.set(service, name);
    }
    const watch = new ServiceWatch(service, (w) => this.#unwatch(w));
    if (name === undefined) watch.end();
    else name.add(watch);
    return watch;
  }

  refresh(service: string): void {
    this.#watched.get(service)?.refresh();
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const name of [...this.#watched.values()]) for (const watch of [...name.watches]) watch.end();
    this.#resolver.cancel();
  }

  /** The instances `query` resolves to now, keyed by id; rejects with `REGISTRY_UNAVAILABLE`. */
  async resolve(service: string, query: Query): Promise<Map<string, Instance>> {
    if (this.#closed) throw unavailable(service, new Error("the discovery is closed"));
    try {
      const found = new Map<string, Instance>();
      const startedAt = this.#settings.now();
      const add = (ips: readonly string[], port: number, weight: number): void => {
        for (const ip of ips) {
          const id = addressOf(ip, port);
          const seen = found.get(id);
          if (seen !== undefined && seen.weight >= weight) continue; // the same address twice
          const addresses = { weft: id, grpc: id, http: id };
          found.set(id, {
            id,
            services: [service],
            addresses,
            weight,
            version: "",
            zone: "",
            labels: {},
            startedAt,
          });
        }
      };
      if (query.kind === "address") {
        add(await this.#addresses(query.host), query.port, DEFAULT_WEIGHT);
        return found;
      }
      let records = await this.#resolver.resolveSrv(query.name).catch(noRecords);
      // a target of "." says the service is not offered at that name (RFC 2782)
      records = records.filter((r) => r.name !== "" && r.name !== ".");
      if (!this.#settings.allPriorities && records.length > 0) {
        const lowest = Math.min(...records.map((r) => r.priority));
        records = records.filter((r) => r.priority === lowest);
      }
      const targets = await Promise.all(records.map((r) => this.#addresses(r.name)));
      // SRV weight 0 still gets a small share (RFC 2782); an instance of weight 0 would get none
      records.forEach((r, i) => {
        add(targets[i] ?? [], r.port, Math.max(1, r.weight));
      });
      return found;
    } catch (error) {
      throw unavailable(service, error);
    }
  }

  /** The A and AAAA records of `host` (an IP literal as is). */
  async #addresses(host: string): Promise<string[]> {
    if (isIP(host) !== 0) return [host];
    const [v4, v6] = await Promise.all([
      this.#resolver.resolve4(host).catch(noRecords),
      this.#resolver.resolve6(host).catch(noRecords),
    ]);
    return [...v4, ...v6];
  }

  #unwatch(watch: ServiceWatch): void {
    const name = this.#watched.get(watch.service);
    if (name === undefined) return;
    name.watches.delete(watch);
    if (name.watches.size > 0) return;
    name.stop();
    this.#watched.delete(watch.service);
  }
}

/** One watched name: its timer, its resolution in flight, the set it last resolved, its watches. */
class WatchedName {
  readonly watches = new Set<ServiceWatch>();
  readonly #dns: Dns;
  readonly #service: string;
  readonly #query: Query;
  readonly #settings: Settings;
  /** The set of the last successful resolution; `undefined` until one succeeds. */
  #last: Map<string, Instance> | undefined;
  /** The next resolution; ref'd, as a watch someone iterates keeps the process alive. */
  #timer: DeadlineTimer | undefined;
  /** When the pending timer fires, ms since the epoch. */
  #dueAt = Number.POSITIVE_INFINITY;
  #running = false;
  /** A refresh came while a resolution was running: do it (rate-limited) once that one ends. */
  #again = false;
  #lastStartedAt = Number.NEGATIVE_INFINITY;
  #stopped = false;

  constructor(dns: Dns, service: string, query: Query, settings: Settings) {
    this.#dns = dns;
    this.#service = service;
    this.#query = query;
    this.#settings = settings;
  }

  /** A new watch of this name: it gets the last set at once, or the result of the first resolution. */
  add(watch: ServiceWatch): void {
    this.watches.add(watch);
    if (this.#last !== undefined) watch.offer(this.#last);
    else if (!this.#running) this.#run();
  }

  refresh(): void {
    if (this.#stopped) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    const wait = this.#lastStartedAt + this.#settings.minRefreshIntervalMs - this.#settings.now();
    if (wait <= 0) this.#run();
    else if (this.#settings.now() + wait < this.#dueAt) this.#schedule(wait);
  }

  stop(): void {
    this.#stopped = true;
    this.#timer?.cancel();
    this.#timer = undefined;
  }

  #schedule(delayMs: number): void {
    this.#timer?.cancel();
    this.#dueAt = this.#settings.now() + delayMs;
    this.#timer = armDeadline(Date.now() + delayMs, () => this.#run());
    this.#timer.ref();
  }

  #run(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#dueAt = Number.POSITIVE_INFINITY;
    this.#running = true;
    this.#lastStartedAt = this.#settings.now();
    void this.#dns
      .resolve(this.#service, this.#query)
      .then(
        (found) => this.#resolved(found),
        (error: unknown) => this.#failed(error),
      )
      .finally(() => {
        this.#running = false;
        if (this.#stopped) return;
        this.#schedule(this.#settings.intervalMs);
        if (this.#again) {
          this.#again = false;
          this.refresh();
        }
      });
  }

  #resolved(found: Map<string, Instance>): void {
    if (this.#stopped) return;
    // an address already known keeps the time it was first seen, so it is not reported as updated
    for (const [id, instance] of found) {
      const known = this.#last?.get(id);
      if (known !== undefined) found.set(id, { ...instance, startedAt: known.startedAt });
    }
    this.#last = found;
    for (const watch of [...this.watches]) watch.offer(found);
  }

  /** Only a watch with no set yet learns of a failure; one with a set keeps it until the next try. */
  #failed(error: unknown): void {
    if (this.#stopped || this.#last !== undefined) return;
    for (const watch of [...this.watches]) watch.fail(error);
  }
}
