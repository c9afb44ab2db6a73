import { randomUUID } from "node:crypto";
import {
  ConfigError,
  type Instance,
  type InstanceChange,
  type InstanceInput,
  type Registry,
} from "@weft/core";
import { abandonRegistration, activeWatches } from "@weft/core/internal";
import { afterEach, describe, expect, it } from "vitest";

export interface RegistryConformanceOptions {
  /** The suite's title; default `"registry conformance"`. */
  name?: string;
  /**
   * Runs the TTL test: a registration abandoned as a crashed owner would abandon it (through
   * `abandonRegistration` of `@weft/core/internal`) must disappear within `ttlMs`, the short TTL the
   * test registers with. Leave it out for backends that cannot simulate a crash.
   */
  ttl?: { ttlMs: number };
}

type Factory = () => Registry | Promise<Registry>;

/** One event a watcher saw, flattened. */
interface Seen {
  kind: "added" | "updated" | "removed";
  instance: Instance;
}

/**
 * A watch under test: applies every change to `view` and logs it, so a test waits for what it expects
 * however the backend batches changes (a file-backed one may fold two writes into one push).
 */
class Watcher {
  readonly view = new Map<string, Instance>();
  readonly log: Seen[] = [];
  readonly first: Promise<InstanceChange>;
  readonly #iterator: AsyncIterator<InstanceChange>;
  #pending: Promise<IteratorResult<InstanceChange>> | undefined;

  constructor(registry: Registry, service: string) {
    this.#iterator = registry.watch(service)[Symbol.asyncIterator]();
    this.first = this.#pull().then((r) => {
      if (r.done === true) throw new Error("the watch ended before its first item");
      return r.value;
    });
  }

  async #pull(): Promise<IteratorResult<InstanceChange>> {
    this.#pending ??= this.#iterator.next();
    const result = await this.#pending;
    this.#pending = undefined;
    if (result.done !== true) {
      for (const kind of ["added", "updated", "removed"] as const) {
        for (const instance of result.value[kind]) {
          this.log.push({ kind, instance });
          if (kind === "removed") this.view.delete(instance.id);
          else this.view.set(instance.id, instance);
        }
      }
    }
    return result;
  }

  /** Pulls changes until `done` holds; fails if the watch ends first. */
  async until(done: (w: Watcher) => boolean): Promise<void> {
    await this.first;
    while (!done(this)) {
      const result = await this.#pull();
      if (result.done === true) throw new Error("the watch ended");
    }
  }

  saw(kind: Seen["kind"], test: (i: Instance) => boolean): boolean {
    return this.log.some((s) => s.kind === kind && test(s.instance));
  }

  /** Whether the next pull reports the end of the watch. */
  async ended(): Promise<boolean> {
    return (await this.#pull()).done === true;
  }

  stop(): Promise<unknown> {
    return this.#iterator.return?.() ?? Promise.resolve();
  }
}

const ids = (instances: readonly Instance[]): string[] => instances.map((i) => i.id).sort();

/**
 * Defines a Vitest suite of what every `Registry` backend must do. `factory` is called at least once
 * per test and must return a fresh, empty registry; every registry it returns is closed after the test.
 */
export function registryConformance(factory: Factory, options: RegistryConformanceOptions = {}): void {
  describe(options.name ?? "registry conformance", () => {
    const open: Registry[] = [];
    const watchers: Watcher[] = [];
    afterEach(async () => {
      for (const w of watchers.splice(0)) await w.stop();
      for (const r of open.splice(0)) await r.close();
    });
    const fresh = async (): Promise<Registry> => {
      const registry = await factory();
      open.push(registry);
      return registry;
    };
    const watch = (registry: Registry, service: string): Watcher => {
      const w = new Watcher(registry, service);
      watchers.push(w);
      return w;
    };
    const service = (): string => `conformance.v1.S${randomUUID().slice(0, 8)}`;
    const input = (services: string[], extra: Partial<InstanceInput> = {}): InstanceInput => ({
      services,
      addresses: { weft: "127.0.0.1:4000" },
      ...extra,
    });

    it("lists a registered instance with the record's defaults filled in", async () => {
      const registry = await fresh();
      const s = service();
      const before = Date.now();
      const reg = await registry.register(input([s]));
      expect(reg.instance.id).toMatch(/./);
      const listed = await registry.list(s);
      expect(listed).toEqual([
        {
          id: reg.instance.id,
          services: [s],
          addresses: { weft: "127.0.0.1:4000" },
          weight: 100,
          version: "",
          zone: "",
          labels: {},
          startedAt: expect.any(Number),
        },
      ]);
      expect(listed[0]?.startedAt).toBeGreaterThanOrEqual(before);
      expect(await registry.list(service())).toEqual([]);
    });

    it("round-trips every field: addresses per protocol, weight, version, zone, labels, start time", async () => {
      const registry = await fresh();
      const s = service();
      const record: Instance = {
        id: `id-${randomUUID()}`,
        services: [s],
        addresses: { weft: "10.0.0.1:4000", grpc: "10.0.0.1:4001", http: "[::1]:8080" },
        weight: 7.5,
        version: "1.4.2",
        zone: "eu-west-1a",
        labels: { group: "a", "weft.io/stress": "true", note: "ünïcode, spaces and / slashes" },
        startedAt: 1_700_000_000_123,
      };
      await registry.register(record);
      expect(await registry.list(s)).toEqual([record]);
      const zero = await registry.register(input([s], { weight: 0 }));
      expect((await registry.list(s)).find((i) => i.id === zero.instance.id)?.weight).toBe(0);
    });

    it("application level: one record listing several services is found under each", async () => {
      const registry = await fresh();
      const [a, b] = [service(), service()];
      const reg = await registry.register(input([a, b]));
      expect(ids(await registry.list(a))).toEqual([reg.instance.id]);
      expect(ids(await registry.list(b))).toEqual([reg.instance.id]);
      expect((await registry.list(a))[0]?.services).toEqual([a, b]);
      await reg.deregister();
      expect(await registry.list(a)).toEqual([]);
      expect(await registry.list(b)).toEqual([]);
    });

    it("interface level: one record per service, each deregistered on its own", async () => {
      const registry = await fresh();
      const [a, b] = [service(), service()];
      const regA = await registry.register(input([a]));
      const regB = await registry.register(input([b]));
      expect(regA.instance.id).not.toBe(regB.instance.id);
      expect(ids(await registry.list(a))).toEqual([regA.instance.id]);
      expect(ids(await registry.list(b))).toEqual([regB.instance.id]);
      await regA.deregister();
      expect(await registry.list(a)).toEqual([]);
      expect(ids(await registry.list(b))).toEqual([regB.instance.id]);
    });

    it("a watch's first item is the current set, all added", async () => {
      const registry = await fresh();
      const s = service();
      const one = await registry.register(input([s]));
      const two = await registry.register(input([s, service()]));
      await registry.register(input([service()]));
      const first = await watch(registry, s).first;
      expect(ids(first.added)).toEqual(ids([one.instance, two.instance]));
      expect(first.updated).toEqual([]);
      expect(first.removed).toEqual([]);
      expect(await watch(registry, service()).first).toEqual({ added: [], updated: [], removed: [] });
    });

    it("watchers see registration as added, update as updated and deregistration as removed", async () => {
      const registry = await fresh();
      const s = service();
      const w = watch(registry, s);
      await w.first;
      const reg = await registry.register(input([s], { labels: { group: "a" } }));
      const id = reg.instance.id;
      await w.until((x) => x.saw("added", (i) => i.id === id));
      await reg.update({ labels: { group: "b" }, weight: 5, version: "2", zone: "z1" });
      expect(reg.instance).toMatchObject({ labels: { group: "b" }, weight: 5, version: "2", zone: "z1" });
      await w.until((x) => x.saw("updated", (i) => i.id === id && i.labels.group === "b"));
      expect(w.view.get(id)).toEqual(reg.instance);
      expect(w.saw("added", (i) => i.id === id && i.labels.group === "b")).toBe(false);
      await reg.deregister();
      await w.until((x) => x.saw("removed", (i) => i.id === id));
      expect(w.view.size).toBe(0);
      expect(await registry.list(s)).toEqual([]);
      await reg.deregister(); // idempotent
    });

    it("a change to one service's record is not pushed to another service's watchers", async () => {
      const registry = await fresh();
      const [a, b] = [service(), service()];
      const wa = watch(registry, a);
      const wb = watch(registry, b);
      await Promise.all([wa.first, wb.first]);
      await registry.register(input([a]));
      const regB = await registry.register(input([b]));
      await wb.until((x) => x.saw("added", (i) => i.id === regB.instance.id));
      await wa.until((x) => x.view.size === 1);
      expect(wa.view.has(regB.instance.id)).toBe(false);
      expect(wb.log.map((s) => s.instance.id)).toEqual([regB.instance.id]);
    });

    it("two watchers of one service both see every change", async () => {
      const registry = await fresh();
      const s = service();
      const [w1, w2] = [watch(registry, s), watch(registry, s)];
      await Promise.all([w1.first, w2.first]);
      const reg = await registry.register(input([s]));
      await reg.update({ weight: 1 });
      await reg.deregister();
      for (const w of [w1, w2]) {
        await w.until((x) => x.saw("removed", (i) => i.id === reg.instance.id));
        expect(w.saw("added", (i) => i.id === reg.instance.id)).toBe(true);
        expect(w.view.size).toBe(0);
      }
    });

    it("ending the iteration stops the watch and releases it", async () => {
      const registry = await fresh();
      const s = service();
      const iterator = registry.watch(s)[Symbol.asyncIterator]();
      await iterator.next();
      expect(activeWatches(registry) ?? 1).toBe(1);
      await iterator.return?.();
      expect(activeWatches(registry) ?? 0).toBe(0);
      await registry.register(input([s]));
      expect(await iterator.next()).toEqual({ value: undefined, done: true });
      // the same through for-await and break
      for await (const change of registry.watch(s)) {
        expect(change.added).toHaveLength(1);
        break;
      }
      expect(activeWatches(registry) ?? 0).toBe(0);
    });

    it("close ends the registry's watches", async () => {
      const registry = await fresh();
      const w = watch(registry, service());
      await w.first;
      await registry.close();
      expect(await w.ended()).toBe(true);
    });

    it("services() names the services with a live instance, sorted (when the backend has it)", async () => {
      const registry = await fresh();
      if (registry.services === undefined) return;
      const [a, b] = [service(), service()].sort() as [string, string];
      const ra = await registry.register(input([b, a]));
      const rb = await registry.register(input([b]));
      const names = await registry.services();
      expect(names).toEqual([...names].sort());
      expect(names.filter((n) => n === a || n === b)).toEqual([a, b]);
      await ra.deregister();
      const after = await registry.services();
      expect(after).toContain(b);
      expect(after).not.toContain(a);
      await rb.deregister();
      expect(await registry.services()).not.toContain(b);
    });

    it("rejects bad input with a ConfigError naming the field", async () => {
      const registry = await fresh();
      const s = service();
      const bad: [string, unknown][] = [
        ["services", { addresses: { weft: "h:1" } }],
        ["services", { services: [], addresses: { weft: "h:1" } }],
        ["service", { services: [""], addresses: { weft: "h:1" } }],
        ["addresses", { services: [s] }],
        ["addresses", { services: [s], addresses: {} }],
        ["addresses.smtp", { services: [s], addresses: { smtp: "h:25" } }],
        ["addresses.weft", { services: [s], addresses: { weft: "" } }],
        ["weight", { services: [s], addresses: { weft: "h:1" }, weight: -1 }],
        ["weight", { services: [s], addresses: { weft: "h:1" }, weight: Number.NaN }],
        ["labels.group", { services: [s], addresses: { weft: "h:1" }, labels: { group: 1 } }],
        ["id", { id: "", services: [s], addresses: { weft: "h:1" } }],
      ];
      for (const [option, value] of bad) {
        await expect(registry.register(value as InstanceInput)).rejects.toMatchObject({
          name: "ConfigError",
          option,
        });
      }
      await expect(registry.register(input([s]), { ttlMs: 0 })).rejects.toBeInstanceOf(ConfigError);
      await expect(registry.list("")).rejects.toBeInstanceOf(ConfigError);
      expect(() => registry.watch("")).toThrow(ConfigError);
      const reg = await registry.register(input([s]));
      await expect(reg.update({ weight: -3 })).rejects.toMatchObject({ option: "weight" });
      expect(reg.instance.weight).toBe(100);
      expect(await registry.list(s)).toEqual([reg.instance]);
    });

    if (options.ttl !== undefined) {
      const { ttlMs } = options.ttl;
      it("an abandoned registration (its owner crashed) is removed within its TTL", async () => {
        const registry = await fresh();
        const s = service();
        const reg = await registry.register(input([s]), { ttlMs });
        const kept = await registry.register(input([s]), { ttlMs });
        const w = watch(registry, s);
        await w.first;
        const abandonedAt = Date.now();
        expect(abandonRegistration(reg)).toBe(true);
        await w.until((x) => x.saw("removed", (i) => i.id === reg.instance.id));
        // a heartbeat may have been written just before: allow one TTL plus a poll
        expect(Date.now() - abandonedAt).toBeLessThan(ttlMs * 3);
        expect(ids(await registry.list(s))).toEqual([kept.instance.id]);
      });
    }
  });
}
