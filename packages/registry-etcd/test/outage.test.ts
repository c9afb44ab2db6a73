/**
 * The etcd watch across an outage, against a real etcd that is killed and restarted: a reconnect
 * within the grace resumes from the last revision applied, a longer outage ends the watch with
 * `UNAVAILABLE`/`REGISTRY_UNAVAILABLE`, and a watch opened once etcd is back starts with the set.
 */
import { randomUUID } from "node:crypto";
import { setTimeout as delay } from "node:timers/promises";
import { Code, type InstanceChange, Reason, WeftError } from "@weft/core";
import { type EtcdServer, startEtcd } from "@weft/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEtcdRegistry, ETCD_REGISTRY_DEFAULTS } from "../src/index.ts";

let etcd: EtcdServer;
beforeAll(async () => {
  etcd = await startEtcd();
});
afterAll(() => etcd?.stop());

const SERVICE = "outage.v1.Outage";
const options = (watchGraceMs: number) => ({
  endpoints: [etcd.endpoint],
  prefix: `/weft-test/${randomUUID()}`,
  watchGraceMs,
});
const ids = (instances: readonly { id: string }[]) => instances.map((i) => i.id).sort();

describe("an etcd watch across an outage", () => {
  it("rejects a bad watchGraceMs with a ConfigError naming it", () => {
    expect(() => createEtcdRegistry({ endpoints: ["http://h:1"], watchGraceMs: -1 })).toThrow(
      /"watchGraceMs"/,
    );
  });

  it("resumes after a 1 s outage, within the default grace: no error, nothing missed or replayed", async () => {
    const registry = createEtcdRegistry(options(ETCD_REGISTRY_DEFAULTS.watchGraceMs));
    const changes = registry.watch(SERVICE)[Symbol.asyncIterator]();
    try {
      expect((await changes.next()).value).toEqual({ added: [], updated: [], removed: [] });
      await registry.register({ id: "before", services: [SERVICE], addresses: { weft: "127.0.0.1:1" } });
      expect(ids((await changes.next()).value.added)).toEqual(["before"]);
      await etcd.kill();
      await delay(1_000);
      await etcd.restart();
      await registry.register({ id: "after", services: [SERVICE], addresses: { weft: "127.0.0.1:2" } });
      const next = (await changes.next()) as IteratorResult<InstanceChange>;
      expect(next.done).toBe(false);
      expect(next.value).toMatchObject({ updated: [], removed: [] });
      expect(ids(next.value.added)).toEqual(["after"]);
    } finally {
      await changes.return?.();
      await registry.close();
    }
  }, 60_000);

  it("throws UNAVAILABLE/REGISTRY_UNAVAILABLE once disconnected past the grace, then ends", async () => {
    const graceMs = 300;
    const registry = createEtcdRegistry(options(graceMs));
    await registry.register({ id: "kept", services: [SERVICE], addresses: { weft: "127.0.0.1:1" } });
    const changes = registry.watch(SERVICE)[Symbol.asyncIterator]();
    try {
      expect(ids((await changes.next()).value.added)).toEqual(["kept"]);
      const pending = changes.next().then(
        () => undefined,
        (e: unknown) => e,
      );
      await etcd.kill();
      const killedAt = performance.now();
      const error = await pending;
      const afterMs = performance.now() - killedAt;
      expect(error).toBeInstanceOf(WeftError);
      expect(error).toMatchObject({ code: Code.UNAVAILABLE, reason: Reason.REGISTRY_UNAVAILABLE });
      // the grace is counted from the first disconnect, which comes as the socket closes
      expect(afterMs).toBeGreaterThanOrEqual(graceMs - 50);
      expect(afterMs).toBeLessThan(graceMs + 2_000);
      expect(await changes.next()).toEqual({ value: undefined, done: true });

      // a watch opened while etcd is down cannot list: it throws the same
      const down = registry.watch(SERVICE)[Symbol.asyncIterator]();
      await expect(down.next()).rejects.toMatchObject({ reason: Reason.REGISTRY_UNAVAILABLE });

      await etcd.restart();
      // once etcd is back (and etcd3's circuit breaker, open up to 5 s after the failures, lets
      // requests through) a new watch starts with the current set; until then a watch throws, and is
      // opened again, as a client's membership does with backoff
      let again = registry.watch(SERVICE)[Symbol.asyncIterator]();
      let first = await again.next().catch(() => undefined);
      const backAt = Date.now();
      while (first === undefined && Date.now() - backAt < 20_000) {
        await delay(200); // the re-watch backoff
        again = registry.watch(SERVICE)[Symbol.asyncIterator]();
        first = await again.next().catch(() => undefined);
      }
      try {
        // the lease outlived the outage or was granted again: the record may take a moment to return
        const seen = new Set(ids(first?.value.added ?? []));
        while (!seen.has("kept")) {
          const next = await again.next();
          for (const i of next.value.added) seen.add(i.id);
        }
        expect([...seen]).toEqual(["kept"]);
      } finally {
        await again.return?.();
      }
    } finally {
      await changes.return?.();
      await etcd.restart();
      await registry.close();
    }
  }, 60_000);
});
