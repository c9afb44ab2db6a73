import { Resolver } from "node:dns/promises";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { type DnsServer, DOMAIN, freeUdpPort, startDnsmasq, within } from "../../test/dnsmasq.ts";
import { Code } from "../errors/code.ts";
import { Reason } from "../errors/reason.ts";
import { ConfigError, WeftError } from "../errors/weft-error.ts";
import { createDnsDiscovery, DNS_DISCOVERY_DEFAULTS, type DnsDiscoveryOptions } from "./dns.ts";
import { activeWatches } from "./probe.ts";
import type { Instance, InstanceChange, Registry } from "./registry.ts";
import { openDiscovery, parseTarget } from "./target.ts";

const CATALOG = `catalog.${DOMAIN}`;
const SRV = `_grpc._tcp.catalog.${DOMAIN}`;
const BOUND_MS = 10_000;

let dns: DnsServer;
beforeAll(async () => {
  dns = await startDnsmasq();
});
afterAll(() => dns?.close());

const opened: { close(): Promise<void> }[] = [];
afterEach(async () => {
  vi.useRealTimers();
  vi.restoreAllMocks();
  for (const d of opened.splice(0)) await d.close();
});

/** A discovery asking the test's dnsmasq; closed after the test. */
function discovery(options: DnsDiscoveryOptions = {}) {
  const d = createDnsDiscovery({ servers: [dns.address], timeoutMs: 500, tries: 1, ...options });
  opened.push(d);
  return d;
}

/** How many times each host's A records have been asked for since the call (resolutions start synchronously). */
function countResolutions(): (host: string) => number {
  const resolve4 = vi.spyOn(Resolver.prototype, "resolve4");
  return (host) => resolve4.mock.calls.filter(([h]) => h === host).length;
}

/** A turn of the event loop (not faked): a resolution that ended has scheduled its next one. */
function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** The next item of a watch, or a failure after a bound of real time (even under a fake clock). */
async function next(changes: AsyncIterator<InstanceChange>): Promise<InstanceChange> {
  const result = await within(changes.next(), BOUND_MS, "no watch item");
  if (result.done === true) throw new Error("the watch ended");
  return result.value;
}

const ids = (list: readonly Instance[]): string[] => list.map((i) => i.id).sort();

describe("createDnsDiscovery", () => {
  it("defaults to a 30 s interval, refreshes at most every 1 s, 2 tries of 2 s, lowest SRV priority", () => {
    expect(DNS_DISCOVERY_DEFAULTS).toEqual({
      intervalMs: 30_000,
      minRefreshIntervalMs: 1_000,
      timeoutMs: 2_000,
      tries: 2,
      srvPriority: "lowest",
    });
  });

  it("rejects bad options with a ConfigError naming the option", () => {
    const bad: [DnsDiscoveryOptions, string][] = [
      [{ intervalMs: 0 }, "intervalMs"],
      [{ intervalMs: 1.5 }, "intervalMs"],
      [{ minRefreshIntervalMs: -1 }, "minRefreshIntervalMs"],
      [{ timeoutMs: Number.NaN }, "timeoutMs"],
      [{ tries: 0 }, "tries"],
      [{ servers: [] }, "servers"],
      [{ servers: ["not a server"] }, "servers"],
      [{ servers: "127.0.0.1" as unknown as string[] }, "servers"],
      [{ srv: { priority: "first" as "all" } }, "srv.priority"],
      [{ now: 5 as unknown as () => number }, "now"],
    ];
    for (const [options, option] of bad) {
      expect(() => createDnsDiscovery(options), option).toThrow(ConfigError);
      try {
        createDnsDiscovery(options);
      } catch (error) {
        expect((error as ConfigError).option).toBe(option);
      }
    }
  });

  it("rejects a service that is neither host:port nor a DNS name (list rejects, watch throws)", async () => {
    const d = discovery();
    for (const service of ["", "catalog:port", "catalog:99999", "a b", "[::1"]) {
      await expect(d.list(service), service).rejects.toMatchObject({ option: "service" });
      expect(() => d.watch(service), service).toThrow(ConfigError);
    }
  });

  it("resolves host:port to the A and AAAA records, one instance per address at that port", async () => {
    await dns.setHosts({ [CATALOG]: ["127.0.0.2", "127.0.0.3", "::1"], [`v4only.${DOMAIN}`]: ["127.0.0.4"] });
    const d = discovery({ now: () => 1234 });
    const list = await d.list(`${CATALOG}:4000`);
    expect(ids(list)).toEqual(["127.0.0.2:4000", "127.0.0.3:4000", "[::1]:4000"]);
    expect(list.find((i) => i.id === "[::1]:4000")).toEqual({
      id: "[::1]:4000",
      services: [`${CATALOG}:4000`],
      addresses: { weft: "[::1]:4000", grpc: "[::1]:4000", http: "[::1]:4000" },
      weight: 100,
      version: "",
      zone: "",
      labels: {},
      startedAt: 1234,
    });
    // a name with A records but no AAAA (NODATA) is its A records
    expect(ids(await d.list(`v4only.${DOMAIN}:80`))).toEqual(["127.0.0.4:80"]);
    // an IP literal is itself, with no query
    expect(ids(await d.list("[::1]:7"))).toEqual(["[::1]:7"]);
  });

  it("resolves an SRV name to its targets' addresses, with the records' ports and weights", async () => {
    await dns.setHosts({
      [`a.${DOMAIN}`]: ["127.0.0.5"],
      [`b.${DOMAIN}`]: ["127.0.0.6", "::1"],
      [`c.${DOMAIN}`]: ["127.0.0.7"],
    });
    await dns.setSrv([
      { name: SRV, target: `a.${DOMAIN}`, port: 4001, weight: 10 },
      { name: SRV, target: `b.${DOMAIN}`, port: 4002, weight: 30 },
      { name: SRV, target: `c.${DOMAIN}`, port: 4003, weight: 0 },
      { name: SRV, target: `gone.${DOMAIN}`, port: 4004, weight: 5 }, // no addresses: no instance
      { name: SRV, target: `c.${DOMAIN}`, port: 5000, priority: 1, weight: 50 }, // a fallback
    ]);
    const weights = (list: Instance[]) => Object.fromEntries(list.map((i) => [i.id, i.weight]));
    expect(weights(await discovery().list(SRV))).toEqual({
      "127.0.0.5:4001": 10,
      "127.0.0.6:4002": 30,
      "[::1]:4002": 30,
      "127.0.0.7:4003": 1, // weight 0 still gets a small share
    });
    const all = await discovery({ srv: { priority: "all" } }).list(SRV);
    expect(weights(all)["127.0.0.7:5000"]).toBe(50);
    expect(all[0]?.addresses.grpc).toBe(all[0]?.id);
  });

  it("treats NXDOMAIN as an empty set: list is empty, a watch's first item is empty", async () => {
    const d = discovery();
    expect(await d.list(`nowhere.${DOMAIN}:4000`)).toEqual([]);
    expect(await d.list(`_grpc._tcp.nowhere.${DOMAIN}`)).toEqual([]);
    const changes = d.watch(`nowhere.${DOMAIN}:4000`)[Symbol.asyncIterator]();
    expect(await next(changes)).toEqual({ added: [], updated: [], removed: [] });
  });

  it("watch: the current set first, then an added and a removed address after a rewrite and refresh()", async () => {
    await dns.setHosts({ [CATALOG]: ["127.0.0.2", "127.0.0.3"] });
    const d = discovery({ minRefreshIntervalMs: 0, intervalMs: 60_000 });
    const service = `${CATALOG}:4000`;
    const changes = d.watch(service)[Symbol.asyncIterator]();
    expect(ids((await next(changes)).added)).toEqual(["127.0.0.2:4000", "127.0.0.3:4000"]);
    await dns.setHosts({ [CATALOG]: ["127.0.0.3", "127.0.0.4"] });
    d.refresh(service);
    const change = await next(changes);
    // 127.0.0.3 stayed the same instance: neither removed nor updated
    expect({ added: ids(change.added), updated: ids(change.updated), removed: ids(change.removed) }).toEqual({
      added: ["127.0.0.4:4000"],
      updated: [],
      removed: ["127.0.0.2:4000"],
    });
  });

  it("watch: re-resolves every intervalMs (fake clock), and an SRV change shows after a restart", async () => {
    await dns.setHosts({ [`a.${DOMAIN}`]: ["127.0.0.5"], [`b.${DOMAIN}`]: ["127.0.0.6"] });
    await dns.setSrv([{ name: SRV, target: `a.${DOMAIN}`, port: 4001, weight: 10 }]);
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
    const d = discovery({ intervalMs: 5_000 });
    const changes = d.watch(SRV)[Symbol.asyncIterator]();
    expect(ids((await next(changes)).added)).toEqual(["127.0.0.5:4001"]);
    await dns.setSrv([
      { name: SRV, target: `a.${DOMAIN}`, port: 4001, weight: 20 },
      { name: SRV, target: `b.${DOMAIN}`, port: 4002, weight: 10 },
    ]);
    const pending = next(changes);
    await vi.advanceTimersByTimeAsync(5_000);
    const change = await pending;
    expect(ids(change.added)).toEqual(["127.0.0.6:4002"]);
    expect(change.updated.map((i) => [i.id, i.weight])).toEqual([["127.0.0.5:4001", 20]]);
    expect(change.removed).toEqual([]);
  });

  it("rate-limits refresh() to one resolution per minRefreshIntervalMs; later ones fold into one", async () => {
    await dns.setHosts({ [CATALOG]: ["127.0.0.2"] });
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
    const d = discovery({ minRefreshIntervalMs: 1_000, intervalMs: 60_000 });
    const service = `${CATALOG}:4000`;
    const changes = d.watch(service)[Symbol.asyncIterator]();
    expect(ids((await next(changes)).added)).toEqual(["127.0.0.2:4000"]);
    // too soon after the first resolution: carried out once the 1 s is up, not now
    await dns.setHosts({ [CATALOG]: ["127.0.0.3"] });
    d.refresh(service);
    await dns.setHosts({ [CATALOG]: ["127.0.0.4"] });
    d.refresh(service);
    const pending = next(changes);
    await vi.advanceTimersByTimeAsync(1_000);
    // had a refresh run at once, this item would have been the 127.0.0.3 set
    const change = await pending;
    expect([ids(change.added), ids(change.removed)]).toEqual([["127.0.0.4:4000"], ["127.0.0.2:4000"]]);
  });

  it("keeps the last set while the DNS server is down: no empty push, later answers diffed from it", async () => {
    await dns.setHosts({ [CATALOG]: ["127.0.0.2", "127.0.0.3"] });
    const d = discovery({ minRefreshIntervalMs: 0, intervalMs: 60_000 });
    const service = `${CATALOG}:4000`;
    const changes = d.watch(service)[Symbol.asyncIterator]();
    expect(ids((await next(changes)).added)).toEqual(["127.0.0.2:4000", "127.0.0.3:4000"]);
    await dns.stop();
    try {
      await expect(d.list(service)).rejects.toMatchObject({
        code: Code.UNAVAILABLE,
        reason: Reason.REGISTRY_UNAVAILABLE,
      });
      d.refresh(service); // fails: the watch keeps its set and stays open
    } finally {
      await dns.start();
    }
    await dns.setHosts({ [CATALOG]: ["127.0.0.2", "127.0.0.3", "127.0.0.4"] });
    d.refresh(service);
    // the next item is the difference from the last set: nothing removed in between
    expect(await next(changes)).toMatchObject({ removed: [], updated: [] });
  });

  it("fails a watch whose first resolution fails with UNAVAILABLE / REGISTRY_UNAVAILABLE", async () => {
    const d = createDnsDiscovery({ servers: [`127.0.0.1:${await freeUdpPort()}`], timeoutMs: 500, tries: 1 });
    opened.push(d);
    const watch = d.watch(`${CATALOG}:4000`);
    const changes = watch[Symbol.asyncIterator]();
    const error = await within(changes.next(), BOUND_MS, "no failure").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WeftError);
    expect(error).toMatchObject({ code: Code.UNAVAILABLE, reason: Reason.REGISTRY_UNAVAILABLE });
    expect(await changes.next()).toEqual({ value: undefined, done: true });
    expect(activeWatches(d as unknown as Registry)).toBe(0);
  });

  it("waits out an intervalMs beyond setTimeout's 24.8-day limit", async () => {
    await dns.setHosts({ [CATALOG]: ["127.0.0.2"] });
    const resolutions = countResolutions();
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
    const month = 30 * 24 * 3600_000;
    const d = discovery({ intervalMs: month });
    const changes = d.watch(`${CATALOG}:4000`)[Symbol.asyncIterator]();
    await next(changes);
    await turn();
    vi.advanceTimersByTime(1_000);
    expect(resolutions(CATALOG)).toBe(1);
    vi.advanceTimersByTime(month - 1_000);
    expect(resolutions(CATALOG)).toBe(2);
  });

  it("keeps the process alive while a name is watched, as a watch someone iterates", async () => {
    await dns.setHosts({ [CATALOG]: ["127.0.0.2"] });
    // real timers: Node counts a timer among its active resources only while it is ref'd
    const kept = (): number => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;
    const before = kept();
    const changes = discovery().watch(`${CATALOG}:4000`)[Symbol.asyncIterator]();
    await next(changes);
    await turn();
    expect(kept()).toBe(before + 1);
    await changes.return?.();
    expect(kept()).toBe(before);
  });

  it("ending the iteration stops resolving a name nobody watches; close ends every watch", async () => {
    const OTHER = `other.${DOMAIN}`;
    await dns.setHosts({ [CATALOG]: ["127.0.0.2"], [OTHER]: ["127.0.0.7"] });
    const resolutions = countResolutions();
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
    const d = discovery({ intervalMs: 5_000 });
    const registry = d as unknown as Registry;
    const service = `${CATALOG}:4000`;
    const first = d.watch(service)[Symbol.asyncIterator]();
    const second = d.watch(service)[Symbol.asyncIterator]();
    await next(first);
    await next(second); // the second watch gets the set the first resolved
    expect(activeWatches(registry)).toBe(2);
    expect(resolutions(CATALOG)).toBe(1); // one resolution per watched name
    await first.return?.();
    await turn();
    vi.advanceTimersByTime(5_000);
    expect(resolutions(CATALOG)).toBe(2); // still watched by the second
    const third = d.watch(`${OTHER}:5000`)[Symbol.asyncIterator]();
    await next(third);
    await second.return?.();
    expect(activeWatches(registry)).toBe(1);
    await turn();
    vi.advanceTimersByTime(5_000);
    expect([resolutions(CATALOG), resolutions(OTHER)]).toEqual([2, 2]);
    await turn();
    await d.close();
    expect(await third.next()).toEqual({ value: undefined, done: true });
    expect(activeWatches(registry)).toBe(0);
    vi.advanceTimersByTime(5_000);
    expect(resolutions(OTHER)).toBe(2);
    expect(vi.getTimerCount()).toBe(0); // nothing is armed again
    await expect(d.list(service)).rejects.toMatchObject({ reason: Reason.REGISTRY_UNAVAILABLE });
  });
});

describe("dns scheme", () => {
  it("dns://<server>/host:port resolves through that DNS server", async () => {
    await dns.setHosts({ [CATALOG]: ["127.0.0.2", "::1"] });
    const { discovery: d, close } = openDiscovery(parseTarget(`dns://${dns.address}/${CATALOG}:4000`));
    opened.push({ close });
    expect(ids(await d.list(`${CATALOG}:4000`))).toEqual(["127.0.0.2:4000", "[::1]:4000"]);
  });

  it("dns:///name uses the system's servers; an authority that is not a server is a ConfigError", async () => {
    const system = openDiscovery(parseTarget(`dns:///${CATALOG}:4000`));
    opened.push(system);
    expect(typeof system.discovery.refresh).toBe("function");
    expect(system.discovery.services).toBeUndefined();
    expect(() => openDiscovery(parseTarget("dns://dns.example:53/x:1"))).toThrow(
      expect.objectContaining({ option: "target" }),
    );
  });
});
