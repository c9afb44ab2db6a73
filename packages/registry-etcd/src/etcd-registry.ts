import {
  Code,
  ConfigError,
  type Instance,
  type InstanceChange,
  type InstanceInput,
  type InstancePatch,
  Reason,
  type RegisterOptions,
  type Registration,
  type Registry,
  WeftError,
} from "@weft/core";
import {
  armDeadline,
  type BackoffOptions,
  backoffDelay,
  checkService,
  type DeadlineTimer,
  numberOption,
  patched,
  probe,
  type RegistrationProbe,
  type RegistryProbe,
  ServiceWatch,
  serviceNames,
  toInstance,
  ttlOf,
} from "@weft/core/internal";
import { noop } from "cockatiel";
import { Etcd3, type IKeyValue, type IWatchResponse, type Lease, type Watcher } from "etcd3";

export interface EtcdRegistryOptions {
  /** The etcd client URLs, e.g. `["http://127.0.0.1:2379"]`; at least one. */
  endpoints: readonly string[];
  /** The key prefix every record sits under; default `/weft/services`. */
  prefix?: string;
  /**
   * The TTL of a registration that does not give its own `ttlMs`: milliseconds, default 10,000. The
   * lease is granted for the TTL rounded up to whole seconds, at least 1 s.
   */
  ttlMs?: number;
  /**
   * How long a watch may stay disconnected from etcd, in milliseconds, before its iterator throws
   * `UNAVAILABLE`/`REGISTRY_UNAVAILABLE`: a reconnect within it resumes from the last revision
   * applied (nothing missed or replayed, nothing reported); past it the consumer learns of the
   * outage and watches again (a client's membership keeps its set, reports once, and re-watches with
   * backoff). Default 3,000.
   */
  watchGraceMs?: number;
}

/** The defaults of `createEtcdRegistry`. */
export const ETCD_REGISTRY_DEFAULTS = {
  prefix: "/weft/services",
  ttlMs: 10_000,
  watchGraceMs: 3_000,
} as const;

/** Waits before granting a lost lease again: 500 ms doubling to 5 s, with core's jitter. */
const REGRANT_BACKOFF: BackoffOptions = { initialDelayMs: 500, maxDelayMs: 5_000 };

/**
 * A registry on etcd. Each registration holds one lease (its TTL in whole seconds, kept alive by the
 * client) and writes one key per service it offers, `<prefix>/<service>/<id>` (both parts
 * URI-encoded), whose value is the whole instance record as JSON. `update` rewrites the keys,
 * `deregister` revokes the lease (etcd deletes the keys). A watch lists `<prefix>/<service>/` at a
 * revision, then watches the prefix from the next revision; after a reconnect within `watchGraceMs`
 * it resumes right after the last event it applied, and drops events it has already applied, so
 * nothing is missed or replayed. When etcd cancels the watch (its revision was compacted) the watch
 * lists again and pushes the difference. A watch that cannot list, or stays disconnected past
 * `watchGraceMs`, throws `UNAVAILABLE`/`REGISTRY_UNAVAILABLE` and ends; the consumer watches again.
 * Bad options throw `ConfigError` naming the option.
 */
export function createEtcdRegistry(options: EtcdRegistryOptions): Registry {
  if (typeof options !== "object" || options === null)
    throw new ConfigError("options", "an object with endpoints", options);
  const endpoints = options.endpoints as unknown;
  if (
    !Array.isArray(endpoints) ||
    endpoints.length === 0 ||
    !endpoints.every((e) => typeof e === "string" && e !== "")
  )
    throw new ConfigError("endpoints", "a non-empty array of etcd client URLs", endpoints);
  const prefix = options.prefix ?? ETCD_REGISTRY_DEFAULTS.prefix;
  if (typeof prefix !== "string" || prefix === "" || prefix.endsWith("/"))
    throw new ConfigError("prefix", "a non-empty key prefix not ending in /", prefix);
  const ttlMs = options.ttlMs ?? ETCD_REGISTRY_DEFAULTS.ttlMs;
  if (typeof ttlMs !== "number" || !Number.isSafeInteger(ttlMs) || ttlMs <= 0)
    throw new ConfigError("ttlMs", "a positive integer of milliseconds", ttlMs);
  const graceMs = numberOption("watchGraceMs", options.watchGraceMs, ETCD_REGISTRY_DEFAULTS.watchGraceMs, 0);
  const client = new Etcd3({
    hosts: [...endpoints] as string[],
    faultHandling: {
      // Weft handles an outage itself (the watch's grace, the client's outage policy): no per-host
      // circuit breaker holding requests back for 5 s after etcd answers again
      host: () => noop,
      // a watch reconnects within a second of etcd coming back, inside its grace
      watchBackoff: new WatchBackoff(0),
    },
  });
  return new EtcdRegistry(client, prefix, ttlMs, graceMs);
}

/**
 * The etcd client's watch reconnect backoff, from Weft's one backoff: 50 ms doubling to 1 s, ±20 %
 * jitter (etcd3 asks `next()` for each wait and reads its `duration`).
 */
class WatchBackoff {
  readonly duration: number;
  readonly #failures: number;

  constructor(failures: number) {
    this.#failures = failures;
    this.duration = failures === 0 ? 0 : backoffDelay(failures, { initialDelayMs: 50, maxDelayMs: 1_000 });
  }

  next(): WatchBackoff {
    return new WatchBackoff(this.#failures + 1);
  }
}

/** An etcd failure as Weft reports it. */
function unavailable(error: unknown): WeftError {
  if (error instanceof WeftError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new WeftError(Code.UNAVAILABLE, `etcd: ${message}`, {
    reason: Reason.REGISTRY_UNAVAILABLE,
    cause: error,
  });
}

async function reaching<T>(step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (error) {
    throw unavailable(error);
  }
}

/** The lease TTL for `ttlMs`: whole seconds, rounded up, at least 1. */
export const leaseSeconds = (ttlMs: number): number => Math.max(1, Math.ceil(ttlMs / 1000));

const ignore = (): void => {};

function parseRecord(value: Buffer): Instance | undefined {
  try {
    const instance = JSON.parse(value.toString("utf8")) as Partial<Instance>;
    return typeof instance.id === "string" && Array.isArray(instance.services)
      ? (instance as Instance)
      : undefined;
  } catch {
    return undefined; // not a record of ours
  }
}

class EtcdRegistry implements Registry {
  readonly client: Etcd3;
  readonly #prefix: string;
  readonly #ttlMs: number;
  /** How long a watch may stay disconnected before it throws. */
  readonly watchGraceMs: number;
  readonly #registrations = new Set<EtcdRegistration>();
  readonly #watches = new Set<EtcdWatch>();
  #closed = false;

  readonly [probe]: RegistryProbe = { activeWatches: () => this.#watches.size };

  constructor(client: Etcd3, prefix: string, ttlMs: number, watchGraceMs: number) {
    this.client = client;
    this.#prefix = prefix;
    this.#ttlMs = ttlMs;
    this.watchGraceMs = watchGraceMs;
  }

  /** The prefix of one service's keys, ending in `/`. */
  servicePrefix(service: string): string {
    return `${this.#prefix}/${encodeURIComponent(service)}/`;
  }

  async register(input: InstanceInput, options?: RegisterOptions): Promise<Registration> {
    const instance = toInstance(input, Date.now());
    const ttlMs = ttlOf(options, this.#ttlMs);
    if (this.#closed) throw unavailable(new Error("the registry is closed"));
    const registration = new EtcdRegistration(this, instance, leaseSeconds(ttlMs));
    await registration.start();
    this.#registrations.add(registration);
    return registration;
  }

  async list(service: string): Promise<Instance[]> {
    checkService(service);
    const { instances } = await this.read(service);
    return [...instances.values()];
  }

  /** The service's records and the revision they were read at. */
  async read(service: string): Promise<{ instances: Map<string, Instance>; revision: number }> {
    const response = await reaching(() => this.client.getAll().prefix(this.servicePrefix(service)).exec());
    const instances = new Map<string, Instance>();
    for (const kv of response.kvs) {
      const instance = parseRecord(kv.value);
      if (instance !== undefined) instances.set(instance.id, instance);
    }
    return { instances, revision: Number(response.header.revision) };
  }

  /** Reads every record under the prefix (one range request) and names the services they offer. */
  async services(): Promise<string[]> {
    const response = await reaching(() => this.client.getAll().prefix(`${this.#prefix}/`).exec());
    const instances: Instance[] = [];
    for (const kv of response.kvs) {
      const instance = parseRecord(kv.value);
      if (instance !== undefined) instances.push(instance);
    }
    return serviceNames(instances);
  }

  watch(service: string): AsyncIterable<InstanceChange> {
    const watch = new EtcdWatch(this, checkService(service), (w) => this.#watches.delete(w));
    this.#watches.add(watch);
    if (this.#closed) watch.end();
    else watch.begin();
    return watch;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const watch of [...this.#watches]) watch.end();
    await Promise.all([...this.#registrations].map((r) => r.deregister().catch(ignore)));
    this.client.close();
  }

  get closed(): boolean {
    return this.#closed;
  }

  forget(registration: EtcdRegistration): void {
    this.#registrations.delete(registration);
  }
}

class EtcdRegistration implements Registration {
  #instance: Instance;
  #lease: Lease;
  #stopped = false;
  /** Writes and the revocation, one after another, so an older write never lands after a newer one. */
  #queue: Promise<void> = Promise.resolve();
  /** Leases lost in a row, without a write that succeeded on a new one in between. */
  #regrants = 0;
  readonly #registry: EtcdRegistry;
  readonly #seconds: number;

  readonly [probe]: RegistrationProbe = {
    abandon: () => {
      this.#stopped = true;
      this.#lease.removeAllListeners("lost");
      this.#lease.release(); // no more keepalives, no revocation: etcd expires the lease
      this.#registry.forget(this);
    },
  };

  constructor(registry: EtcdRegistry, instance: Instance, seconds: number) {
    this.#registry = registry;
    this.#instance = instance;
    this.#seconds = seconds;
    this.#lease = this.#grant();
  }

  get instance(): Instance {
    return this.#instance;
  }

  async start(): Promise<void> {
    try {
      await this.#write();
    } catch (error) {
      this.#stopped = true;
      this.#lease.removeAllListeners("lost");
      await this.#lease.revoke().catch(ignore);
      throw error;
    }
  }

  async update(patch: InstancePatch): Promise<void> {
    const next = patched(this.#instance, patch);
    if (this.#stopped) return;
    this.#instance = next;
    await this.#write();
  }

  async deregister(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#registry.forget(this);
    const lease = this.#lease;
    lease.removeAllListeners("lost");
    await this.#enqueue(() => reaching(() => lease.revoke()));
  }

  /** A lease kept alive by the client; when etcd says it is lost (an outage longer than the TTL), a new one. */
  #grant(): Lease {
    const lease = this.#registry.client.lease(this.#seconds);
    lease.on("lost", () => {
      if (this.#stopped) return;
      const delay = backoffDelay(++this.#regrants, REGRANT_BACKOFF);
      armDeadline(Date.now() + delay, () => {
        if (this.#stopped || this.#registry.closed) return;
        this.#lease = this.#grant();
        this.#write().then(() => {
          this.#regrants = 0;
        }, ignore);
      });
    });
    return lease;
  }

  #write(): Promise<void> {
    return this.#enqueue(async () => {
      if (this.#stopped) return;
      const value = JSON.stringify(this.#instance);
      const lease = this.#lease;
      const key = encodeURIComponent(this.#instance.id);
      await reaching(() =>
        Promise.all(
          this.#instance.services.map((s) =>
            lease
              .put(`${this.#registry.servicePrefix(s)}${key}`)
              .value(value)
              .exec(),
          ),
        ),
      );
    });
  }

  #enqueue(step: () => Promise<void>): Promise<void> {
    const run = this.#queue.then(step);
    this.#queue = run.catch(ignore);
    return run;
  }
}

/**
 * One watch of one service: a listing, then an etcd watch from the revision after it. It throws
 * `UNAVAILABLE`/`REGISTRY_UNAVAILABLE` (and ends) when the listing fails, or when the etcd watcher
 * stays disconnected longer than the registry's `watchGraceMs`; re-watching is the consumer's.
 */
class EtcdWatch extends ServiceWatch {
  readonly #registry: EtcdRegistry;
  #instances = new Map<string, Instance>();
  /** The revision of the last listing or event applied; events at or below it are replays. */
  #revision = 0;
  #watcher: Watcher | undefined;
  #ended = false;
  /** Armed while the watcher is disconnected: past it, the watch fails. */
  #grace: DeadlineTimer | undefined;
  /** Why the watcher last disconnected. */
  #lost: unknown;

  constructor(registry: EtcdRegistry, service: string, onEnd: (watch: EtcdWatch) => void) {
    super(service, (w) => {
      this.#stop();
      onEnd(w as EtcdWatch);
    });
    this.#registry = registry;
  }

  /** Lists the service and watches from the next revision; a failure ends the watch with it. */
  begin(): void {
    void this.#sync().catch((error: unknown) => this.fail(unavailable(error)));
  }

  async #sync(): Promise<void> {
    const { instances, revision } = await this.#registry.read(this.service);
    if (this.#ended) return;
    this.#instances = instances;
    this.#revision = revision;
    this.offer(new Map(instances));
    const prefix = this.#registry.servicePrefix(this.service);
    const creating = this.#registry.client
      .watch()
      .prefix(prefix)
      .startRevision(String(revision + 1))
      .create();
    // etcd3 creates the watch once it reaches etcd, however long that takes: the grace runs meanwhile
    this.#disconnected(undefined);
    const watcher = await reaching(() => creating);
    if (this.#ended) {
      await watcher.cancel().catch(ignore);
      return;
    }
    this.#connected();
    this.#watcher = watcher;
    watcher.on("data", (response) => this.#apply(watcher, response));
    // etcd3 resumes a watch after a reconnect from the revision it last heard of, which can be past
    // events it has not delivered yet: resume right after the last event applied instead
    watcher.on("connected", () => {
      this.#connected();
      this.#resumeAfterApplied(watcher);
    });
    // etcd3 reconnects by itself (and says so again per failed attempt): give it the grace, then fail
    watcher.on("disconnected", (error: unknown) => {
      if (this.#watcher === watcher) this.#disconnected(error);
    });
    watcher.on("error", () => {
      // etcd cancelled the watch (e.g. the revision was compacted): list again, push the difference
      if (this.#watcher !== watcher) return;
      this.#watcher = undefined;
      void watcher.cancel().catch(ignore);
      this.begin();
    });
  }

  /** Not connected to etcd (`error`: why, when known): arms the grace unless it runs already. */
  #disconnected(error: unknown): void {
    if (error !== undefined) this.#lost = error;
    this.#grace ??= armDeadline(Date.now() + this.#registry.watchGraceMs, lostTooLong, this);
  }

  #connected(): void {
    this.#grace?.cancel();
    this.#grace = undefined;
    this.#lost = undefined;
  }

  /** The watcher stayed disconnected through the grace: the consumer learns of the outage. */
  lostTooLong(): void {
    this.#grace = undefined;
    const ms = this.#registry.watchGraceMs;
    const why = this.#lost instanceof Error ? `: ${this.#lost.message}` : "";
    this.fail(
      new WeftError(Code.UNAVAILABLE, `etcd: the watch of ${this.service} lost etcd for ${ms} ms${why}`, {
        reason: Reason.REGISTRY_UNAVAILABLE,
        cause: this.#lost,
      }),
    );
  }

  #apply(watcher: Watcher, response: IWatchResponse): void {
    let changed = false;
    // one transaction's events share a revision: skip only what was applied before this response
    const applied = this.#revision;
    for (const event of response.events) {
      const kv: IKeyValue = event.kv;
      const revision = Number(kv.mod_revision);
      if (revision <= applied) continue; // already applied before a reconnect
      if (revision > this.#revision) this.#revision = revision;
      const id = decodeURIComponent(kv.key.toString("utf8").split("/").pop() ?? "");
      if (event.type === "Delete") changed = this.#instances.delete(id) || changed;
      else {
        const instance = parseRecord(kv.value);
        if (instance === undefined) continue;
        this.#instances.set(instance.id, instance);
        changed = true;
      }
    }
    this.#resumeAfterApplied(watcher);
    if (changed) this.offer(new Map(this.#instances));
  }

  #resumeAfterApplied(watcher: Watcher): void {
    watcher.request.start_revision = String(this.#revision + 1);
  }

  #stop(): void {
    this.#ended = true;
    this.#grace?.cancel();
    this.#grace = undefined;
    const watcher = this.#watcher;
    this.#watcher = undefined;
    void watcher?.cancel().catch(ignore);
  }
}

function lostTooLong(watch: EtcdWatch): void {
  watch.lostTooLong();
}
