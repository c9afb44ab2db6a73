import { armDeadline, type DeadlineTimer } from "../call/deadline.ts";
import { checkService, offering, patched, serviceNames, toInstance, ttlOf } from "./instance.ts";
import { probe, type RegistrationProbe, type RegistryProbe } from "./probe.ts";
import type {
  Instance,
  InstanceChange,
  InstanceInput,
  InstancePatch,
  RegisterOptions,
  Registration,
  Registry,
} from "./registry.ts";
import { ServiceWatch } from "./watch.ts";

/** The TTL a memory registration has when none is given (used only once abandoned). */
const DEFAULT_TTL_MS = 10_000;

/**
 * An in-process registry: the default for one process and for tests. Records live until deregistered
 * or the registry is closed (their owner is the process itself, so it cannot crash without them);
 * watchers see every change synchronously after it is made.
 */
export function createMemoryRegistry(): Registry {
  return new MemoryRegistry();
}

class MemoryRegistry implements Registry {
  readonly #instances = new Map<string, Instance>();
  readonly #registrations = new Set<MemoryRegistration>();
  readonly #watches = new Set<ServiceWatch>();

  readonly [probe]: RegistryProbe = { activeWatches: () => this.#watches.size };

  register(input: InstanceInput, options?: RegisterOptions): Promise<Registration> {
    try {
      const instance = toInstance(input, Date.now());
      const ttlMs = ttlOf(options, DEFAULT_TTL_MS);
      const registration = new MemoryRegistration(this, instance, ttlMs);
      this.#registrations.add(registration);
      this.set(instance);
      return Promise.resolve(registration);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  list(service: string): Promise<Instance[]> {
    try {
      return Promise.resolve([...offering(this.#instances.values(), checkService(service)).values()]);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  services(): Promise<string[]> {
    return Promise.resolve(serviceNames(this.#instances.values()));
  }

  watch(service: string): AsyncIterable<InstanceChange> {
    const watch = new ServiceWatch(checkService(service), (w) => this.#watches.delete(w));
    this.#watches.add(watch);
    watch.offer(offering(this.#instances.values(), service));
    return watch;
  }

  async close(): Promise<void> {
    for (const registration of [...this.#registrations]) await registration.deregister();
    for (const watch of [...this.#watches]) watch.end();
  }

  /** Writes a record and tells the watchers of its services. */
  set(instance: Instance): void {
    const before = this.#instances.get(instance.id);
    this.#instances.set(instance.id, instance);
    this.#notify(before, instance);
  }

  /** Removes a record, if it is still `instance`, and tells the watchers. */
  delete(registration: MemoryRegistration): void {
    this.#registrations.delete(registration);
    const current = this.#instances.get(registration.instance.id);
    if (current !== registration.instance) return;
    this.#instances.delete(current.id);
    this.#notify(current, undefined);
  }

  #notify(before: Instance | undefined, after: Instance | undefined): void {
    for (const watch of this.#watches) {
      if (before?.services.includes(watch.service) || after?.services.includes(watch.service))
        watch.offer(offering(this.#instances.values(), watch.service));
    }
  }
}

class MemoryRegistration implements Registration {
  #instance: Instance;
  #done = false;
  /** Set once abandoned: the TTL running out, which does not keep the process alive. */
  #expiry: DeadlineTimer | undefined;
  readonly #registry: MemoryRegistry;
  readonly #ttlMs: number;

  readonly [probe]: RegistrationProbe = {
    abandon: () => {
      if (this.#done || this.#expiry !== undefined) return;
      this.#expiry = armDeadline(Date.now() + this.#ttlMs, () => void this.deregister());
    },
  };

  constructor(registry: MemoryRegistry, instance: Instance, ttlMs: number) {
    this.#registry = registry;
    this.#instance = instance;
    this.#ttlMs = ttlMs;
  }

  get instance(): Instance {
    return this.#instance;
  }

  update(patch: InstancePatch): Promise<void> {
    try {
      const next = patched(this.#instance, patch);
      if (this.#done) return Promise.resolve();
      this.#instance = next;
      this.#registry.set(next);
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  deregister(): Promise<void> {
    if (this.#done) return Promise.resolve();
    this.#done = true;
    this.#expiry?.cancel();
    this.#registry.delete(this);
    return Promise.resolve();
  }
}
