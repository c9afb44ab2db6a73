import { describe, expect, it } from "vitest";
import { clientCall } from "../../test/client-calls.ts";
import { FakeNode, instance } from "../../test/fake-node.ts";
import { messageType } from "../codec/json-codec.ts";
import { Code } from "../errors/code.ts";
import type { Call, CallResult } from "../interceptor/call.ts";
import { defineService, methodsOf, unary } from "../service/service.ts";
import { Cluster } from "./cluster.ts";
import {
  groupRoute,
  pinRoute,
  type RouteFilter,
  route,
  stressRoute,
  tierRoute,
  zoneRoute,
} from "./routing.ts";

const Svc = defineService("test.Svc", {
  get: unary(messageType<{ n: number }>(), messageType<string>()),
  put: unary(messageType<{ n: number }>(), messageType<string>()),
});
const [get, put] = methodsOf(Svc) as [Call["method"], Call["method"]];

function call(headers: Record<string, string> = {}, method = get): Call {
  const c = clientCall(method);
  for (const [k, v] of Object.entries(headers)) c.headers.set(k, v);
  return c;
}

function node(id: string, fields: { zone?: string; labels?: Record<string, string> } = {}): FakeNode {
  return new FakeNode(id, instance(id, fields));
}

const ids = (nodes: readonly { address: string }[]) => nodes.map((n) => n.address);

async function reached(cluster: Cluster, c: Call): Promise<unknown> {
  return ((await cluster.call(c)) as CallResult & { message: unknown }).message;
}

describe("routing filters", () => {
  const a = node("a", { labels: { group: "a" } });
  const b = node("b", { labels: { group: "b" } });
  const plain = node("plain");

  it("groups: a tagged call reaches its group; an untagged call reaches untagged instances, or all", () => {
    const nodes = [a, b, plain];
    expect(ids(route([groupRoute()], nodes, call({ "weft-ctx-group": "a" })))).toEqual(["a"]);
    expect(ids(route([groupRoute()], nodes, call()))).toEqual(["plain"]);
    expect(ids(route([groupRoute({ untagged: "all" })], nodes, call()))).toEqual(["a", "b", "plain"]);
  });

  it("groups fall back to the set given when the group has no instance, or fail when told to", () => {
    const nodes = [a, b, plain];
    expect(ids(route([groupRoute()], nodes, call({ "weft-ctx-group": "c" })))).toEqual(["a", "b", "plain"]);
    expect(() => route([groupRoute({ onEmpty: "fail" })], nodes, call({ "weft-ctx-group": "c" }))).toThrow(
      expect.objectContaining({ code: Code.UNAVAILABLE, reason: "NO_AVAILABLE_NODE" }),
    );
  });

  it("stress: flagged calls reach stress instances only, normal calls never do, and neither falls back", () => {
    const s = node("s", { labels: { stress: "true" } });
    const nodes = [plain, s];
    expect(ids(route([stressRoute()], nodes, call({ "weft-ctx-stress": "1" })))).toEqual(["s"]);
    expect(ids(route([stressRoute()], nodes, call()))).toEqual(["plain"]);
    expect(ids(route([stressRoute()], nodes, call({ "weft-ctx-stress": "false" })))).toEqual(["plain"]);
    expect(() => route([stressRoute()], [s], call())).toThrow(
      expect.objectContaining({ reason: "NO_AVAILABLE_NODE" }),
    );
    expect(() => route([stressRoute()], [plain], call({ "weft-ctx-stress": "1" }))).toThrow(/stress/);
    // a group filter falling back before it cannot hand normal traffic to a stress instance
    expect(ids(route([groupRoute(), stressRoute()], [s, plain], call({ "weft-ctx-group": "x" })))).toEqual([
      "plain",
    ]);
    expect(() => stressRoute({ onEmpty: "fallback" as "fail" })).toThrow(/onEmpty/);
  });

  it("VIP tiers: tier calls reach their tier, others stay off reserved instances", () => {
    const vip = node("vip", { labels: { tier: "gold" } });
    expect(ids(route([tierRoute()], [vip, plain], call({ "weft-ctx-tier": "gold" })))).toEqual(["vip"]);
    expect(ids(route([tierRoute()], [vip, plain], call()))).toEqual(["plain"]);
    expect(ids(route([tierRoute()], [vip, plain], call({ "weft-ctx-tier": "silver" })))).toEqual([
      "vip",
      "plain",
    ]);
  });

  it("debug pinning by instance id or address; fails when the instance is absent, unless falling back", () => {
    const x = new FakeNode("10.0.0.9:4000", instance("inst-9"));
    const nodes = [a, x];
    expect(ids(route([pinRoute()], nodes, call({ "weft-debug-instance": "inst-9" })))).toEqual([
      "10.0.0.9:4000",
    ]);
    expect(ids(route([pinRoute()], nodes, call({ "weft-debug-instance": "10.0.0.9:4000" })))).toEqual([
      "10.0.0.9:4000",
    ]);
    expect(route([pinRoute()], nodes, call())).toBe(nodes);
    expect(() => route([pinRoute()], nodes, call({ "weft-debug-instance": "gone" }))).toThrow(/pin/);
    expect(route([pinRoute({ onEmpty: "fallback" })], nodes, call({ "weft-debug-instance": "gone" }))).toBe(
      nodes,
    );
  });

  it("zone affinity: same zone while enough are healthy, every zone otherwise", () => {
    const z1 = node("z1", { zone: "eu-1" });
    const z2 = node("z2", { zone: "eu-1" });
    const other = node("o", { zone: "eu-2" });
    const nodes = [z1, z2, other];
    expect(ids(route([zoneRoute({ zone: "eu-1" })], nodes, call()))).toEqual(["z1", "z2"]);
    expect(ids(route([zoneRoute({ zone: "eu-1", minHealthy: 2 })], nodes, call()))).toEqual(["z1", "z2"]);
    z2.backingOff = true;
    expect(route([zoneRoute({ zone: "eu-1", minHealthy: 2 })], nodes, call())).toBe(nodes);
    expect(ids(route([zoneRoute({ zone: "eu-3" })], nodes, call()))).toEqual(["z1", "z2", "o"]);
    expect(() => zoneRoute({ zone: "" })).toThrow(/zone/);
    expect(() => zoneRoute({ zone: "a", minHealthy: 0 })).toThrow(/minHealthy/);
  });

  it("reuses the filtered list while nothing changed, and sees a label changed at run time on the next call", () => {
    const x = node("x", { labels: { group: "a" } });
    const y = node("y");
    const nodes = [x, y];
    const filter = groupRoute();
    const first = route([filter], nodes, call({ "weft-ctx-group": "a" }));
    expect(route([filter], nodes, call({ "weft-ctx-group": "a" }))).toBe(first);
    // the registry pushes an `updated` record: y joins group a
    y.instance = instance("y", { labels: { group: "a" } });
    expect(ids(route([filter], nodes, call({ "weft-ctx-group": "a" })))).toEqual(["x", "y"]);
  });
});

describe("a cluster with routing", () => {
  it("routes every call through the cluster's filters; per-method filters replace them", async () => {
    const a = node("a", { labels: { group: "a" } });
    const plain = node("plain");
    const cluster = new Cluster([a, plain], {
      routing: [groupRoute({ onEmpty: "fail" })],
      methods: { "/test.Svc/put": { routing: [] } },
    });
    for (let i = 0; i < 3; i++) expect(await reached(cluster, call({ "weft-ctx-group": "a" }))).toBe("a");
    expect(await reached(cluster, call())).toBe("plain");
    await expect(cluster.call(call({ "weft-ctx-group": "zz" }))).rejects.toMatchObject({
      reason: "NO_AVAILABLE_NODE",
    });
    const seen = new Set<unknown>();
    for (let i = 0; i < 4; i++) seen.add(await reached(cluster, call({ "weft-ctx-group": "zz" }, put)));
    expect(seen).toEqual(new Set(["a", "plain"]));
  });

  it("a label changed at run time takes effect on the next call through the cluster", async () => {
    const x = node("x");
    const s = node("s");
    const cluster = new Cluster([x, s], { routing: [stressRoute()] });
    expect(await reached(cluster, call({ "weft-ctx-stress": "1" })).catch((e: unknown) => e)).toMatchObject({
      reason: "NO_AVAILABLE_NODE",
    });
    s.instance = instance("s", { labels: { stress: "1" } });
    expect(await reached(cluster, call({ "weft-ctx-stress": "1" }))).toBe("s");
    for (let i = 0; i < 4; i++) expect(await reached(cluster, call())).toBe("x");
  });

  it("refuses bad routing options with a ConfigError naming the option", () => {
    const nodes = [node("a")];
    expect(() => new Cluster(nodes, { routing: {} as unknown as RouteFilter[] })).toThrow(/"routing"/);
    expect(
      () => new Cluster(nodes, { methods: { get: { routing: [null as unknown as RouteFilter] } } }),
    ).toThrow(/methods\.get\.routing/);
    expect(() => groupRoute({ onEmpty: "maybe" as "fail" })).toThrow(/onEmpty/);
    expect(() => groupRoute({ untagged: "some" as "all" })).toThrow(/untagged/);
  });
});
