import { createHash } from "node:crypto";
import { type FSWatcher, mkdirSync, watch as watchDirectory } from "node:fs";
import { mkdir, readdir, readFile, rename, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "../errors/weft-error.ts";
import {
  checkService,
  offering,
  patched,
  positiveInteger,
  serviceNames,
  toInstance,
  ttlOf,
} from "./instance.ts";
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

export interface LocalRegistryOptions {
  /**
   * The directory the processes share, one file per registration; created when missing. Default
   * `weft-registry` under `os.tmpdir()`.
   */
  directory?: string;
  /** The TTL of a registration that does not give its own `ttlMs`: milliseconds, default 10,000. */
  ttlMs?: number;
  /**
   * How often a watching registry rereads the directory besides `fs.watch` (which misses changes on
   * some filesystems) and expires stale records: milliseconds, default 1,000.
   */
  pollIntervalMs?: number;
}

/** The defaults of `createLocalRegistry`. */
export const LOCAL_REGISTRY_DEFAULTS = {
  directory: join(tmpdir(), "weft-registry"),
  ttlMs: 10_000,
  pollIntervalMs: 1_000,
} as const;

/** What a registration's file holds. */
interface RecordFile {
  instance: Instance;
  ttlMs: number;
  /** When the owner last rewrote the file, milliseconds since the epoch. */
  heartbeatAt: number;
}

/**
 * A registry for several processes on one host with nothing to install: each registration is a file
 * in a shared directory, rewritten (temp file + rename, so readers never see half a record) every
 * TTL/3. A record whose last heartbeat is older than its TTL is expired: readers ignore it and delete
 * it, so a crashed process's instances disappear within their TTL (plus one poll for watchers).
 * Watchers reread the directory on `fs.watch` events, on every poll and after this registry's own
 * writes.
 */
export function createLocalRegistry(options: LocalRegistryOptions = {}): Registry {
  const directory = options.directory ?? LOCAL_REGISTRY_DEFAULTS.directory;
  if (typeof directory !== "string" || directory === "")
    throw new ConfigError("directory", "a non-empty path", directory);
  const ms = "a positive integer of milliseconds";
  const ttlMs = positiveInteger("ttlMs", options.ttlMs ?? LOCAL_REGISTRY_DEFAULTS.ttlMs, ms);
  const pollIntervalMs = positiveInteger(
    "pollIntervalMs",
    options.pollIntervalMs ?? LOCAL_REGISTRY_DEFAULTS.pollIntervalMs,
    ms,
  );
  mkdirSync(directory, { recursive: true });
  return new LocalRegistry(directory, ttlMs, pollIntervalMs);
}

const fileOf = (id: string): string => `${createHash("sha256").update(id).digest("hex").slice(0, 40)}.json`;

let temps = 0;

/** Writes `data` to `path` atomically: a temp file beside it, then a rename over it. */
async function writeAtomically(directory: string, name: string, data: string): Promise<void> {
  const temp = join(directory, `.${name}.${process.pid}.${temps++}.tmp`);
  try {
    await writeFile(temp, data);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
    await mkdir(directory, { recursive: true }); // the directory was cleaned away: recreate it
    await writeFile(temp, data);
  }
  await rename(temp, join(directory, name));
}

async function readRecord(path: string): Promise<RecordFile | undefined> {
  try {
    const data = JSON.parse(await readFile(path, "utf8")) as Partial<RecordFile>;
    const instance = data.instance;
    if (
      typeof data.heartbeatAt !== "number" ||
      typeof data.ttlMs !== "number" ||
      typeof instance?.id !== "string" ||
      !Array.isArray(instance.services)
    )
      return undefined;
    return data as RecordFile;
  } catch {
    return undefined; // gone since readdir, or not a record
  }
}

const expired = (record: RecordFile, now: number): boolean => now > record.heartbeatAt + record.ttlMs;

const ignore = (): void => {};

class LocalRegistry implements Registry {
  readonly #directory: string;
  readonly #ttlMs: number;
  readonly #pollIntervalMs: number;
  readonly #registrations = new Set<LocalRegistration>();
  readonly #watches = new Set<ServiceWatch>();
  /** While anything watches: the directory watcher and the poll. */
  #watcher: FSWatcher | undefined;
  #poll: NodeJS.Timeout | undefined;
  #scanning: Promise<void> | undefined;
  #rescan = false;

  readonly [probe]: RegistryProbe = { activeWatches: () => this.#watches.size };

  constructor(directory: string, ttlMs: number, pollIntervalMs: number) {
    this.#directory = directory;
    this.#ttlMs = ttlMs;
    this.#pollIntervalMs = pollIntervalMs;
  }

  async register(input: InstanceInput, options?: RegisterOptions): Promise<Registration> {
    const instance = toInstance(input, Date.now());
    const ttlMs = ttlOf(options, this.#ttlMs);
    const registration = new LocalRegistration(this, this.#directory, instance, ttlMs);
    await registration.start();
    this.#registrations.add(registration);
    this.changed();
    return registration;
  }

  async list(service: string): Promise<Instance[]> {
    checkService(service);
    return [...offering(await this.#read(), service).values()];
  }

  async services(): Promise<string[]> {
    return serviceNames(await this.#read());
  }

  watch(service: string): AsyncIterable<InstanceChange> {
    const watch = new ServiceWatch(checkService(service), (w) => this.#unwatch(w));
    this.#watches.add(watch);
    this.#startWatching();
    this.changed();
    return watch;
  }

  async close(): Promise<void> {
    for (const registration of [...this.#registrations]) await registration.deregister();
    for (const watch of [...this.#watches]) watch.end();
  }

  /** A registration of this registry is gone. */
  forget(registration: LocalRegistration): void {
    this.#registrations.delete(registration);
  }

  /** Something in the directory changed: reread it for the watchers (at most one read at a time). */
  changed(): void {
    if (this.#watches.size === 0) return;
    if (this.#scanning !== undefined) {
      this.#rescan = true;
      return;
    }
    this.#scanning = this.#scan().finally(() => {
      this.#scanning = undefined;
      if (this.#rescan) {
        this.#rescan = false;
        this.changed();
      }
    });
  }

  async #scan(): Promise<void> {
    const instances = await this.#read().catch(() => undefined);
    if (instances === undefined) return;
    for (const watch of [...this.#watches]) watch.offer(offering(instances, watch.service));
  }

  /** Every live record in the directory; expired ones are deleted on the way. */
  async #read(): Promise<Instance[]> {
    let names: string[];
    try {
      names = await readdir(this.#directory);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw error;
    }
    const now = Date.now();
    const records = await Promise.all(
      names
        .filter((name) => name.endsWith(".json") && !name.startsWith("."))
        .map(async (name) => {
          const path = join(this.#directory, name);
          const record = await readRecord(path);
          if (record === undefined || !expired(record, now)) return record;
          // read again right before deleting, so a heartbeat that landed meanwhile is not lost
          const again = await readRecord(path);
          if (again !== undefined && expired(again, Date.now())) await unlink(path).catch(ignore);
          return undefined;
        }),
    );
    return records.flatMap((r) => (r === undefined ? [] : [r.instance]));
  }

  #startWatching(): void {
    if (this.#poll !== undefined) return;
    this.#poll = setInterval(() => this.changed(), this.#pollIntervalMs);
    try {
      this.#watcher = watchDirectory(this.#directory, () => this.changed());
      this.#watcher.on("error", () => this.#stopDirectoryWatcher()); // the poll carries on
    } catch {
      this.#watcher = undefined; // fs.watch unsupported here: the poll alone
    }
  }

  #stopDirectoryWatcher(): void {
    this.#watcher?.close();
    this.#watcher = undefined;
  }

  #unwatch(watch: ServiceWatch): void {
    this.#watches.delete(watch);
    if (this.#watches.size > 0) return;
    clearInterval(this.#poll);
    this.#poll = undefined;
    this.#stopDirectoryWatcher();
  }
}

class LocalRegistration implements Registration {
  #instance: Instance;
  /** Writes and the deletion, one after another, so an older write never lands after a newer one. */
  #queue: Promise<void> = Promise.resolve();
  #heartbeat: NodeJS.Timeout | undefined;
  #stopped = false;
  readonly #registry: LocalRegistry;
  readonly #directory: string;
  readonly #name: string;
  readonly #ttlMs: number;

  readonly [probe]: RegistrationProbe = {
    abandon: () => {
      this.#stopped = true;
      clearInterval(this.#heartbeat);
      this.#registry.forget(this);
    },
  };

  constructor(registry: LocalRegistry, directory: string, instance: Instance, ttlMs: number) {
    this.#registry = registry;
    this.#directory = directory;
    this.#instance = instance;
    this.#name = fileOf(instance.id);
    this.#ttlMs = ttlMs;
  }

  get instance(): Instance {
    return this.#instance;
  }

  async start(): Promise<void> {
    await this.#write();
    this.#heartbeat = setInterval(() => void this.#write().catch(ignore), Math.max(1, this.#ttlMs / 3));
    this.#heartbeat.unref();
  }

  async update(patch: InstancePatch): Promise<void> {
    const next = patched(this.#instance, patch);
    if (this.#stopped) return;
    this.#instance = next;
    await this.#write();
    this.#registry.changed();
  }

  async deregister(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#heartbeat);
    this.#registry.forget(this);
    await this.#enqueue(() => unlink(join(this.#directory, this.#name)).catch(ignore));
    this.#registry.changed();
  }

  #write(): Promise<void> {
    return this.#enqueue(async () => {
      if (this.#stopped) return;
      const record: RecordFile = { instance: this.#instance, ttlMs: this.#ttlMs, heartbeatAt: Date.now() };
      await writeAtomically(this.#directory, this.#name, JSON.stringify(record));
    });
  }

  #enqueue(step: () => Promise<void>): Promise<void> {
    const run = this.#queue.then(step);
    this.#queue = run.catch(ignore);
    return run;
  }
}
