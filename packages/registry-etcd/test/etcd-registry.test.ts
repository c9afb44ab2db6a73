import { randomUUID } from "node:crypto";
import { ConfigError, type InstanceChange, Reason, WeftError } from "@weft/core";
import { abandonRegistration } from "@weft/core/internal";
import { type EtcdServer, startEtcd } from "@weft/testing";
import { Etcd3 } from "etcd3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEtcdRegistry, ETCD_REGISTRY_DEFAULTS } from "../src/index.ts";

let etcd: EtcdServer;
beforeAll(async () => {
  etcd = await startEtcd();
});
afterAll(() => etcd?.stop());

const fresh = () => ({ endpoints: [etcd.endpoint], prefix: `/weft-test/${randomUUID()}` });

async function until(
  changes: AsyncIterator<InstanceChange>,
  test: (change: InstanceChange) => boolean,
): Promise<InstanceChange> {
  for (;;) {
    const next = await changes.next();
    if (next.done === true) throw new Error("the watch ended");
    if (test(next.value)) return next.value;
  }
}

describe("createEtcdRegistry", () => {
  it("defaults to the /weft/services prefix, a 10 s TTL and a 3 s watch grace", () => {
    expect(ETCD_REGISTRY_DEFAULTS).toEqual({ prefix: "/weft/services", ttlMs: 10_000, watchGraceMs: 3_000 });
  });

  it("rejects bad options with a ConfigError naming the option", () => {
    expect(() => createEtcdRegistry({ endpoints: [] })).toThrow(/"endpoints"/);
    expect(() => createEtcdRegistry({ endpoints: ["http://h:1"], prefix: "/a/" })).toThrow(/"prefix"/);
    expect(() => createEtcdRegistry({ endpoints: ["http://h:1"], ttlMs: 0 })).toThrow(ConfigError);
  });

  it("writes one key per service under a lease of the TTL rounded up to seconds", async () => {
    const options = fresh();
    const registry = createEtcdRegistry(options);
    const client = new Etcd3({ hosts: etcd.endpoint });
    try {
      const reg = await registry.register(
        { id: "a/b", services: ["x.v1.X", "y.v1.Y"], addresses: { weft: "127.0.0.1:1" } },
        { ttlMs: 1_500 },
      );
      const keys = await client.getAll().prefix(`${options.prefix}/`).keys();
      expect(keys.map(String).sort()).toEqual([
        `${options.prefix}/x.v1.X/a%2Fb`,
        `${options.prefix}/y.v1.Y/a%2Fb`,
      ]);
      const value = await client.get(`${options.prefix}/x.v1.X/a%2Fb`).json();
      expect(value).toEqual(reg.instance);
      const [lease] = (await client.leaseClient.leaseLeases()).leases;
      expect(lease).toBeDefined();
      const ttl = await client.leaseClient.leaseTimeToLive({ ID: lease?.ID ?? 0 });
      expect(ttl.grantedTTL).toBe("2");
      await reg.deregister();
      expect(await client.getAll().prefix(`${options.prefix}/`).keys()).toEqual([]);
    } finally {
      client.close();
      await registry.close();
    }
  });

  it("applies every event of one transaction (they share one revision)", async () => {
    const options = fresh();
    const registry = createEtcdRegistry(options);
    const client = new Etcd3({ hosts: etcd.endpoint });
    const changes = registry.watch("x.v1.X")[Symbol.asyncIterator]();
    try {
      const a = await registry.register({
        id: "a",
        services: ["x.v1.X"],
        addresses: { weft: "127.0.0.1:1" },
      });
      const b = await registry.register({
        id: "b",
        services: ["x.v1.X"],
        addresses: { weft: "127.0.0.1:2" },
      });
      await until(changes, (c) => c.added.some((i) => i.id === "b"));
      // one delete of the whole prefix: two events at the same revision
      await client.delete().prefix(`${options.prefix}/x.v1.X/`);
      const removed = new Set<string>();
      while (removed.size < 2)
        for (const i of (await until(changes, (c) => c.removed.length > 0)).removed) removed.add(i.id);
      expect([...removed].sort()).toEqual(["a", "b"]);
      expect(await registry.list("x.v1.X")).toEqual([]);
      await Promise.all([a.deregister(), b.deregister()]);
    } finally {
      await changes.return?.();
      client.close();
      await registry.close();
    }
  });

  it("a registration whose lease is no longer kept alive leaves list and watchers within its TTL", async () => {
    const options = fresh();
    const owner = createEtcdRegistry(options);
    const watcher = createEtcdRegistry(options);
    const changes = watcher.watch("crash.v1.Crash")[Symbol.asyncIterator]();
    try {
      await changes.next();
      const ttlMs = 1_000;
      const reg = await owner.register(
        { services: ["crash.v1.Crash"], addresses: { weft: "127.0.0.1:1" } },
        { ttlMs },
      );
      const id = reg.instance.id;
      await until(changes, (c) => c.added.some((i) => i.id === id));
      expect(abandonRegistration(reg)).toBe(true);
      const abandonedAt = Date.now();
      await until(changes, (c) => c.removed.some((i) => i.id === id));
      // the last keepalive was at most TTL/3 earlier; etcd checks expiry every 500 ms
      expect(Date.now() - abandonedAt).toBeLessThan(ttlMs + 1_000);
      expect(await watcher.list("crash.v1.Crash")).toEqual([]);
    } finally {
      await changes.return?.();
      await Promise.all([owner.close(), watcher.close()]);
    }
  });

  it("fails with UNAVAILABLE, reason REGISTRY_UNAVAILABLE, when etcd cannot be reached", async () => {
    const registry = createEtcdRegistry({ endpoints: ["http://127.0.0.1:1"] });
    try {
      const error = await registry.list("s").catch((e: unknown) => e);
      expect(error).toBeInstanceOf(WeftError);
      expect(error).toMatchObject({ code: 14, reason: Reason.REGISTRY_UNAVAILABLE });
    } finally {
      await registry.close();
    }
  });
});
