/**
 * The registry interface: a registrar side (register → a handle that updates and deregisters) and a
 * discovery side (list, and watch pushing `{ added, updated, removed }`). Every backend (memory,
 * local, etcd) implements it and passes `registryConformance` from `@weft/testing`; DNS implements
 * the discovery side only.
 */

/** The protocols an instance can advertise an address for. */
export type AdvertisedProtocol = "weft" | "grpc" | "http";

/**
 * One running instance as the registry stores it. Application level: one record listing every service
 * the process serves. Interface level: one record per service (each with its own id).
 */
export interface Instance {
  /** Unique in the registry; a random UUID unless given. */
  readonly id: string;
  /** The services this record offers (at least one), e.g. `catalog.v1.Catalog`. */
  readonly services: readonly string[];
  /** The address clients dial, per protocol (`host:port`); at least one. May differ from the bind address. */
  readonly addresses: Readonly<Partial<Record<AdvertisedProtocol, string>>>;
  /** Relative share of traffic for weighted balancers; a finite number ≥ 0, default 100. */
  readonly weight: number;
  /** The deployed version, free-form; default `""`. */
  readonly version: string;
  /** Availability zone for zone affinity; default `""`. */
  readonly zone: string;
  /** Free-form labels that routing filters read (group, stress, tier…); default `{}`. */
  readonly labels: Readonly<Record<string, string>>;
  /** When the instance started, milliseconds since the epoch; default the time of `register`. */
  readonly startedAt: number;
}

/** What `register` takes: an `Instance` where everything but `services` and `addresses` has a default. */
export interface InstanceInput {
  id?: string;
  services: readonly string[];
  addresses: Partial<Record<AdvertisedProtocol, string>>;
  weight?: number;
  version?: string;
  zone?: string;
  labels?: Record<string, string>;
  startedAt?: number;
}

/** What `Registration.update` may change; fields left out keep their value (`labels` is replaced whole). */
export interface InstancePatch {
  addresses?: Partial<Record<AdvertisedProtocol, string>>;
  weight?: number;
  version?: string;
  zone?: string;
  labels?: Record<string, string>;
}

export interface RegisterOptions {
  /**
   * How long the record outlives its owner: the backend keeps it alive (heartbeat, lease keepalive)
   * while the registration stands, and a crashed owner's record disappears within this time. A
   * positive integer of milliseconds; each backend has its own default (local: 10,000). Backends
   * whose records cannot outlive their owner (memory) use it only when the owner is abandoned.
   */
  ttlMs?: number;
}

/** One standing registration, kept alive by the backend until `deregister` (or the registry's `close`). */
export interface Registration {
  /** The record as last written. */
  readonly instance: Instance;
  /** Changes the record; watchers see it as `updated`. */
  update(patch: InstancePatch): Promise<void>;
  /** Removes the record (watchers see it as `removed`) and stops keeping it alive. Idempotent. */
  deregister(): Promise<void>;
}

/** The registrar side. */
export interface Registrar {
  register(instance: InstanceInput, options?: RegisterOptions): Promise<Registration>;
}

/** One push of a watch: the instances of the watched service that appeared, changed and went away. */
export interface InstanceChange {
  readonly added: readonly Instance[];
  readonly updated: readonly Instance[];
  readonly removed: readonly Instance[];
}

/** The discovery side. */
export interface Discovery {
  /** The live instances offering `service`, in no particular order. */
  list(service: string): Promise<Instance[]>;
  /**
   * Pushes the changes of `service`'s instances. The first item is the current set (all `added`, maybe
   * empty); later items are changes, never empty. Ending the iteration (`break`, `return()`) stops the
   * watch and releases what it holds. An empty set is pushed as it is: holding off on an empty list
   * for a grace period is the client's policy, not the backend's.
   */
  watch(service: string): AsyncIterable<InstanceChange>;
  /**
   * The names of the services that have at least one live instance, sorted. Optional: a backend that
   * can only resolve a name it is given (DNS) leaves it out.
   */
  services?(): Promise<string[]>;
  /**
   * Asks the backend to re-read `service` now, because a client failed to connect to one of its
   * instances. Optional: a push backend (memory, local, etcd) leaves it out; a polling one (DNS)
   * re-resolves at once instead of waiting for its interval.
   */
  refresh?(service: string): void;
}

/** A backend: both sides, and `close` (deregisters this registry's registrations and ends its watches). */
export interface Registry extends Registrar, Discovery {
  close(): Promise<void>;
}
