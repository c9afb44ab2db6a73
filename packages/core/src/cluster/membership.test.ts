import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { clientCall } from "../../test/client-calls.ts";
import { type Deferred, deferred } from "../../test/deferred.ts";
import { consistentHash, hashBy } from "../balancer/hash.ts";
import { smoothWeightedRoundRobin } from "../balancer/round-robin.ts";
import type { RetryRefused } from "../call/client-call.ts";
import { messageType } from "../codec/json-codec.ts";
import { createMemoryRegistry } from "../discovery/memory-registry.ts";
import { activeWatches } from "../discovery/probe.ts";
import type { Discovery, InstanceChange, Registry } from "../discovery/registry.ts";
import { Code } from "../errors/code.ts";
import { ConfigError, WeftError } from "../errors/weft-error.ts";
import type { Call, CallResult } from "../interceptor/call.ts";
import { Metadata } from "../metadata/metadata.ts";
import { defineService, methodsOf, unary } from "../service/service.ts";
import type { Telemetry, WeftEventName } from "../telemetry/telemetry.ts";
import type { TransportNode } from "../transport/node.ts";
import { Cluster } from "./cluster.ts";
import { type DiscoveryPolicy, Membership } from "./membership.ts";

const Svc = defineService("test.Svc", {
  Get: unary(messageType<unknown>(), messageType<unknown>()),
  Put: unary(messageType<unknown>(), messageType<unknown>()),
});
const [getMethod, putMethod] = methodsOf(Svc) as [Call["method"], Call["method"]];

/** A node without sockets: it answers with its address, or holds calls the test settles. */
class FakeNode implements TransportNode {
  readonly address: string;
  instance: TransportNode["instance"];
  weight: number | undefined;
  ready = true;
  backingOff = false;
  failConnect = false;
  hold = false;
  closed = false;
  readonly held: Deferred<CallResult>[] = [];
  inFlight = 0;

  constructor(address: string) {
    this.address = address;
  }

  connect(): Promise<unknown> {
    return Promise.resolve();
  }

  call(_call: Call, _retry: RetryRefused | undefined, _attempt: number): Promise<CallResult> {
    if (this.closed) return Promise.reject(new Error("closed"));
    const answer = {
      stream: false,
      headers: new Metadata(),
      message: this.address,
      trailers: new Metadata(),
    };
    if (!this.hold) return Promise.resolve(answer as CallResult);
    const d = deferred<CallResult>();
    this.held.push(d);
    this.inFlight++;
    return d.promise.finally(() => {
      this.inFlight--;
    });
  }

  /** Ends the held calls. */
  finish(): void {
    const answer = {
      stream: false,
      headers: new Metadata(),
      message: this.address,
      trailers: new Metadata(),
    };
    for (const d of this.held.splice(0)) d.resolve(answer as CallResult);
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
}

let registry: Registry;
const built = new Map<string, FakeNode>();
const closers: (() => Promise<void>)[] = [];

function follow(
  policy: DiscoveryPolicy = {},
  discovery: Discovery = registry,
  telemetry?: Telemetry,
): Membership<FakeNode> {
  const m = new Membership({
    discovery,
    telemetry,
    service: "test.Svc",
    protocol: "weft",
    factory: (address) => {
      const node = new FakeNode(address);
      built.set(address, node);
      return node;
    },
    policy: { onDiscoveryError: () => {}, onDiscoveryRecovered: () => {}, ...policy },
  });
  closers.push(() => m.close());
  return m;
}

function register(
  port: number,
  extra: { weight?: number; startedAt?: number; labels?: Record<string, string> } = {},
) {
  return registry.register({ services: ["test.Svc"], addresses: { weft: `10.0.0.1:${port}` }, ...extra });
}

async function send(
  cluster: Cluster,
  options: { deadline?: number; method?: Call["method"]; key?: string } = {},
) {
  const call = clientCall(
    options.method ?? getMethod,
    options.deadline === undefined ? {} : { deadline: options.deadline },
  );
  if (options.key !== undefined) call.headers.set("key", options.key);
  const result = await cluster.call(call);
  return (result as { message: string }).message;
}

/** Lets pushed changes and settled promises run (the fake clock does not move). */
const flush = () => vi.advanceTimersByTimeAsync(0);

beforeEach(() => {
  vi.useFakeTimers();
  registry = createMemoryRegistry();
  built.clear();
});

afterEach(async () => {
  for (const close of closers.splice(0)) await close();
  await registry.close();
  vi.useRealTimers();
});

describe("Membership", () => {
  it("follows instances as they are added, updated and removed", async () => {
    const a = await register(1);
    const m = follow();
    await flush();
    expect(m.nodes.map((n) => n.address)).toEqual(["10.0.0.1:1"]);
    expect(m.nodes[0]!.instance?.id).toBe(a.instance.id);
    expect(Object.isFrozen(m.nodes)).toBe(true);

    const b = await register(2, { weight: 50 });
    await flush();
    expect(m.nodes.map((n) => [n.address, n.weight])).toEqual([
      ["10.0.0.1:1", 100],
      ["10.0.0.1:2", 50],
    ]);

    const before = m.nodes;
    await b.update({ weight: 20, labels: { tier: "gold" } });
    await flush();
    expect(m.nodes).not.toBe(before); // a new array on every change
    expect(m.nodes[1]!.weight).toBe(20);
    expect(m.nodes[1]!.instance?.labels).toEqual({ tier: "gold" });
    expect(m.nodes[1]).toBe(before[1]); // same address, same node

    await b.update({ addresses: { weft: "10.0.0.1:3" } });
    await flush();
    expect(m.nodes.map((n) => n.address)).toEqual(["10.0.0.1:1", "10.0.0.1:3"]);
    expect(built.get("10.0.0.1:2")!.closed).toBe(true); // its address changed: retired (idle, closed)

    await a.deregister();
    await flush();
    expect(m.nodes.map((n) => n.address)).toEqual(["10.0.0.1:3"]);
  });

  it("leaves out instances without this transport's protocol address", async () => {
    await registry.register({ services: ["test.Svc"], addresses: { grpc: "10.0.0.9:1" } });
    await register(1);
    const m = follow();
    await flush();
    expect(m.nodes.map((n) => n.address)).toEqual(["10.0.0.1:1"]);
  });

  it("keeps a retired node open until its call in flight completes", async () => {
    const a = await register(1);
    const m = follow();
    const cluster = new Cluster(m);
    await flush();
    const node = built.get("10.0.0.1:1")!;
    node.hold = true;
    const pending = send(cluster);
    await register(2);
    await a.deregister();
    await flush();
    expect(m.nodes.map((n) => n.address)).toEqual(["10.0.0.1:2"]);
    expect(node.closed).toBe(false);
    expect(await send(cluster)).toBe("10.0.0.1:2"); // no new call goes to the retired node
    node.finish();
    await expect(pending).resolves.toBe("10.0.0.1:1");
    await vi.advanceTimersByTimeAsync(1_000);
    expect(node.closed).toBe(true);
  });

  it("closes a retired node after the grace even with calls still in flight", async () => {
    const a = await register(1);
    const m = follow({ retireGraceMs: 5_000 });
    const cluster = new Cluster(m);
    await flush();
    const node = built.get("10.0.0.1:1")!;
    node.hold = true;
    void send(cluster).catch(() => {});
    await register(2);
    await a.deregister();
    await vi.advanceTimersByTimeAsync(4_000);
    expect(node.closed).toBe(false);
    await vi.advanceTimersByTimeAsync(1_500);
    expect(node.closed).toBe(true);
  });

  it("makes calls wait for the first set within their deadline", async () => {
    const gate = deferred<void>();
    const changes = deferred<InstanceChange>();
    let pulls = 0;
    const slow: Discovery = {
      list: () => Promise.resolve([]),
      watch: () => ({
        [Symbol.asyncIterator]: () => ({
          next: async () => {
            if (pulls++ > 0) return new Promise<never>(() => {}); // no later change
            await gate.promise;
            return { value: await changes.promise, done: false };
          },
        }),
      }),
    };
    const m = follow({}, slow);
    const cluster = new Cluster(m);
    const early = send(cluster, { deadline: Date.now() + 100 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    const patient = send(cluster, { deadline: Date.now() + 10_000 });
    await vi.advanceTimersByTimeAsync(150);
    expect(await early).toMatchObject({ code: Code.DEADLINE_EXCEEDED });
    const instance = (await register(7)).instance;
    gate.resolve();
    changes.resolve({ added: [instance], updated: [], removed: [] });
    await flush();
    await expect(patient).resolves.toBe("10.0.0.1:7");
  });

  it("fails calls at once with NO_AVAILABLE_NODE when the known set is empty", async () => {
    const m = follow();
    const cluster = new Cluster(m);
    await flush();
    await expect(send(cluster)).rejects.toMatchObject({
      code: Code.UNAVAILABLE,
      reason: "NO_AVAILABLE_NODE",
    });
  });

  it("applies an empty set only after it stayed empty for emptyGraceMs", async () => {
    const a = await register(1);
    const m = follow({ emptyGraceMs: 5_000 });
    const cluster = new Cluster(m);
    await flush();
    await a.deregister();
    await vi.advanceTimersByTimeAsync(4_000);
    expect(await send(cluster)).toBe("10.0.0.1:1"); // still the last non-empty set

    const b = await register(2); // a non-empty push cancels the pending empty
    await vi.advanceTimersByTimeAsync(2_000);
    expect(m.nodes.map((n) => n.address)).toEqual(["10.0.0.1:2"]);

    await b.deregister();
    await vi.advanceTimersByTimeAsync(4_999);
    expect(m.nodes).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(m.nodes).toHaveLength(0);
    await expect(send(cluster)).rejects.toMatchObject({ reason: "NO_AVAILABLE_NODE" });
  });

  describe("outage", () => {
    /** A discovery over the registry whose watches the test breaks (they throw) and heals. */
    function flaky() {
      let broken = false;
      let watches = 0;
      const failure = () => {
        const d = deferred<never>();
        d.promise.catch(() => {});
        return d;
      };
      let fail = failure();
      const discovery: Discovery = {
        list: (s) => registry.list(s),
        watch(service) {
          watches++;
          if (broken) throw new Error("registry down");
          const it = registry.watch(service)[Symbol.asyncIterator]();
          const failed = fail.promise;
          const wrapped: AsyncIterator<InstanceChange> = {
            next: () => Promise.race([it.next(), failed]),
            return: () => it.return?.() ?? Promise.resolve({ value: undefined, done: true }),
          };
          return { [Symbol.asyncIterator]: () => wrapped };
        },
      };
      return {
        discovery,
        watches: () => watches,
        breakIt() {
          broken = true;
          fail.reject(new Error("registry down"));
          fail = failure();
        },
        heal() {
          broken = false;
        },
      };
    }

    it("keeps the cached set, reports once, re-watches with backoff and reports recovery", async () => {
      await register(1);
      const f = flaky();
      const errors: WeftError[] = [];
      let recovered = 0;
      const events: [WeftEventName, unknown][] = [];
      const m = follow(
        {
          retry: { initialDelayMs: 1_000, maxDelayMs: 4_000 },
          onDiscoveryError: (e) => errors.push(e),
          onDiscoveryRecovered: () => recovered++,
        },
        f.discovery,
        { event: (name, attributes) => events.push([name, attributes]) },
      );
      const cluster = new Cluster(m);
      await flush();
      await register(2);
      await flush();
      expect(m.nodes).toHaveLength(2);

      const watchesBefore = f.watches();
      f.breakIt();
      await flush();
      await register(3); // while the registry is down: seen after recovery
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatchObject({ code: Code.UNAVAILABLE, reason: "REGISTRY_UNAVAILABLE" });
      expect(await send(cluster)).toMatch(/10\.0\.0\.1:[12]/); // cached set in use

      // retries at ~1 s, ~2 s, ~4 s, ~4 s (±20 %): four re-watches in 12 s, one report
      await vi.advanceTimersByTimeAsync(12_000);
      const retries = f.watches() - watchesBefore;
      expect(retries).toBeGreaterThanOrEqual(3);
      expect(retries).toBeLessThanOrEqual(5);
      expect(errors).toHaveLength(1);
      for (let i = 0; i < 10; i++) await send(cluster);
      expect(errors).toHaveLength(1);

      f.heal();
      await vi.advanceTimersByTimeAsync(5_000);
      expect(recovered).toBe(1);
      expect(m.nodes.map((n) => n.address)).toEqual(["10.0.0.1:1", "10.0.0.1:2", "10.0.0.1:3"]);
      // the same story through the telemetry hook: membership changes, one outage, one recovery
      const changed = (nodes: number) => [
        "discovery.changed",
        { service: "test.Svc", protocol: "weft", nodes, added: 1, removed: 0 },
      ];
      expect(events.map(([name]) => name)).toEqual([
        "discovery.changed",
        "discovery.changed",
        "discovery.outage",
        "discovery.recovered",
        "discovery.changed",
      ]);
      expect(events[0]).toEqual(changed(1));
      expect(events[1]).toEqual(changed(2));
      expect(events[2]).toEqual([
        "discovery.outage",
        { service: "test.Svc", reason: "REGISTRY_UNAVAILABLE" },
      ]);
      expect((events[3]![1] as { durationMs: number }).durationMs).toBeGreaterThanOrEqual(12_000);
      expect(events[4]).toEqual(changed(3));
    });

    it("drops the cached set after maxStalenessMs: calls fail REGISTRY_UNAVAILABLE", async () => {
      await register(1);
      const f = flaky();
      const m = follow(
        { maxStalenessMs: 30_000, retry: { initialDelayMs: 1_000, maxDelayMs: 1_000 } },
        f.discovery,
      );
      const cluster = new Cluster(m);
      await flush();
      f.breakIt();
      await flush();
      await vi.advanceTimersByTimeAsync(29_000);
      expect(await send(cluster)).toBe("10.0.0.1:1");
      await vi.advanceTimersByTimeAsync(1_000);
      await expect(send(cluster)).rejects.toMatchObject({
        code: Code.UNAVAILABLE,
        reason: "REGISTRY_UNAVAILABLE",
      });
      f.heal();
      await vi.advanceTimersByTimeAsync(2_000);
      expect(await send(cluster)).toBe("10.0.0.1:1");
    });

    it("fails calls REGISTRY_UNAVAILABLE when the watch fails before any set is known", async () => {
      const f = flaky();
      f.breakIt();
      const m = follow({}, f.discovery);
      const cluster = new Cluster(m);
      await expect(send(cluster)).rejects.toMatchObject({ reason: "REGISTRY_UNAVAILABLE" });
    });
  });

  it("asks the registry to refresh when a node fails to connect", async () => {
    await register(1);
    await register(2);
    const refresh = vi.fn();
    const m = follow({}, { list: (s) => registry.list(s), watch: (s) => registry.watch(s), refresh });
    const cluster = new Cluster(m);
    await flush();
    const bad = built.get("10.0.0.1:1")!;
    bad.ready = false;
    bad.connect = () =>
      Promise.reject(new WeftError(Code.UNAVAILABLE, "refused", { reason: "CONNECTION_FAILED" }));
    const answers = [await send(cluster), await send(cluster)];
    expect(answers).toEqual(["10.0.0.1:2", "10.0.0.1:2"]);
    expect(refresh).toHaveBeenCalledWith("test.Svc");
  });

  it("warms a new instance up from 10 % to its full weight over warmupMs", async () => {
    const now = Date.now();
    await register(1, { startedAt: now - 3_600_000 });
    await register(2, { startedAt: now, weight: 200 });
    const m = follow({ warmupMs: 10_000 });
    const cluster = new Cluster(m, { balancer: smoothWeightedRoundRobin() });
    await flush();
    const weights = () => m.nodes.map((n) => Math.round(n.weight!));
    expect(weights()).toEqual([100, 20]);
    const count = async () => {
      let fresh = 0;
      for (let i = 0; i < 120; i++) if ((await send(cluster)) === "10.0.0.1:2") fresh++;
      return fresh;
    };
    expect(await count()).toBe(20); // 20 / 120 picks
    await vi.advanceTimersByTimeAsync(5_000);
    expect(weights()).toEqual([100, 110]); // 200 × (0.1 + 0.9 × 0.5)
    await vi.advanceTimersByTimeAsync(5_000);
    expect(weights()).toEqual([100, 200]);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(weights()).toEqual([100, 200]);
  });

  it("gives a method its own balancer: consistent hash on one, round robin on the rest", async () => {
    for (const port of [1, 2, 3]) await register(port);
    const key = (call: Call) => call.headers.get("key");
    const m = follow();
    const cluster = new Cluster(m, { methods: { Put: { balancer: consistentHash({ key }) } } });
    await flush();
    const puts = new Set<string>();
    for (let i = 0; i < 9; i++) puts.add(await send(cluster, { method: putMethod, key: "user-7" }));
    expect(puts.size).toBe(1);
    const gets: string[] = [];
    for (let i = 0; i < 3; i++) gets.push(await send(cluster, { method: getMethod, key: "user-7" }));
    expect(new Set(gets).size).toBe(3);
  });

  it("rejects bad per-method and discovery options with ConfigError", () => {
    const m = follow();
    expect(() => new Cluster(m, { methods: { Put: { balancer: {} as never } } })).toThrow(ConfigError);
    expect(() => follow({ emptyGraceMs: -1 })).toThrow(/discovery\.emptyGraceMs/);
    expect(() => follow({ onDiscoveryError: 1 as never })).toThrow(/discovery\.onDiscoveryError/);
    expect(() => follow({ logger: {} as never })).toThrow(/discovery\.logger/);
  });
});

describe("balancers over a changing node list", () => {
  it("consistent hash sees a weight change and keeps most keys when a node is added", async () => {
    const key = (call: Call) => call.headers.get("key");
    const a = await register(1);
    await register(2);
    const m = follow();
    const cluster = new Cluster(m, { balancer: consistentHash({ key }) });
    await flush();
    const place = async () => {
      const out = new Map<string, string>();
      for (let i = 0; i < 300; i++) out.set(`k${i}`, await send(cluster, { key: `k${i}` }));
      return out;
    };
    const before = await place();
    await register(3);
    await flush();
    const after = await place();
    let moved = 0;
    for (const [k, node] of before) if (after.get(k) !== node) moved++;
    expect(moved).toBeGreaterThan(40); // about a third move, to the new node only
    expect(moved).toBeLessThan(160);
    for (const [k, node] of before) if (after.get(k) !== node) expect(after.get(k)).toBe("10.0.0.1:3");

    await a.update({ weight: 0 }); // weight 0: no ring points
    await flush();
    const zero = await place();
    expect([...zero.values()].includes("10.0.0.1:1")).toBe(false);
  });

  it("hash, smooth WRR and the default keep answering as nodes leave and come back", async () => {
    const regs = [await register(1), await register(2), await register(3)];
    const m = follow({ emptyGraceMs: 0 });
    const key = (call: Call) => call.headers.get("key");
    const clusters = [
      new Cluster(m),
      new Cluster(m, { balancer: smoothWeightedRoundRobin() }),
      new Cluster(m, { balancer: hashBy({ key }) }),
    ];
    await flush();
    await regs[0]!.deregister();
    await flush();
    for (const c of clusters)
      for (let i = 0; i < 5; i++) expect(await send(c, { key: `k${i}` })).not.toBe("10.0.0.1:1");
    await register(1);
    await flush();
    const seen = new Set<string>();
    for (let i = 0; i < 6; i++) seen.add(await send(clusters[1]!));
    expect(seen).toEqual(new Set(["10.0.0.1:1", "10.0.0.1:2", "10.0.0.1:3"]));
  });
});

describe("a cluster over a membership", () => {
  it("stops the membership's watch when one of the cluster's options is bad", async () => {
    const m = follow();
    await flush();
    expect(activeWatches(registry)).toBe(1);
    expect(() => new Cluster(m, { maxRefusedRetries: -1 })).toThrow(ConfigError);
    expect(() => new Cluster(follow(), { picker: {} as never })).toThrow(/picker/);
    await flush();
    expect(activeWatches(registry)).toBe(0);
  });

  it("fails a call still waiting for the first set with TRANSPORT_CLOSED when it closes", async () => {
    const cluster = new Cluster(follow());
    const pending = send(cluster).then(undefined, (e: unknown) => e);
    await cluster.close();
    await expect(pending).resolves.toMatchObject({ code: Code.UNAVAILABLE, reason: "TRANSPORT_CLOSED" });
  });
});
