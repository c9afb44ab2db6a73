import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";
import { clientCall } from "../../test/client-calls.ts";
import { seededRandom } from "../../test/seeded-random.ts";
import { messageType } from "../codec/json-codec.ts";
import { Code } from "../errors/code.ts";
import { ConfigError, WeftError } from "../errors/weft-error.ts";
import type { Call } from "../interceptor/call.ts";
import { defineService, methodsOf, unary } from "../service/service.ts";
import type { Balancer, BalancerNode, DoneInfo } from "./balancer.ts";
import { buildRing, consistentHash, hashBy, stableHash } from "./hash.ts";
import { leastActive, p2cEwma } from "./least-active.ts";
import { random, weightedRandom } from "./random.ts";
import { roundRobin, smoothWeightedRoundRobin } from "./round-robin.ts";

const Svc = defineService("test.Svc", { get: unary(messageType<unknown>(), messageType<unknown>()) });
const [get] = methodsOf(Svc) as [Call["method"]];
const call = clientCall(get, {});

interface Node extends BalancerNode {
  address: string;
  weight?: number;
  backingOff: boolean;
}
const node = (address: string, weight?: number): Node =>
  weight === undefined ? { address, backingOff: false } : { address, weight, backingOff: false };

function counts(balancer: Balancer, nodes: readonly Node[], picks: number): Map<string, number> {
  const out = new Map<string, number>();
  for (let i = 0; i < picks; i++) {
    const picked = balancer.pick(nodes, call)!;
    out.set(picked.node.address, (out.get(picked.node.address) ?? 0) + 1);
    picked.done({ latencyMs: 1, error: undefined });
  }
  return out;
}

describe("roundRobin", () => {
  it("cycles through the nodes, skipping one backing off", () => {
    const nodes = [node("a"), node("b"), node("c")];
    nodes[1]!.backingOff = true;
    const rr = roundRobin();
    expect(rr.feedback).toBe(false);
    expect(Array.from({ length: 4 }, () => rr.pick(nodes, call)!.node.address)).toEqual(["a", "c", "a", "c"]);
    expect(rr.pick([nodes[1]!], call)!.node.address).toBe("b");
  });
});

describe("smoothWeightedRoundRobin", () => {
  it("follows nginx's sequence for weights 5/1/1", () => {
    const nodes = [node("a", 5), node("b", 1), node("c", 1)];
    const swrr = smoothWeightedRoundRobin();
    const seq = Array.from({ length: 14 }, () => swrr.pick(nodes, call)!.node.address).join("");
    expect(seq).toBe("aabacaaaabacaa");
  });

  it("gives each node its weight's share and none to weight 0", () => {
    const nodes = [node("a", 300), node("b"), node("c", 0)];
    const got = counts(smoothWeightedRoundRobin(), nodes, 4000);
    expect(got.get("a")).toBe(3000);
    expect(got.get("b")).toBe(1000);
    expect(got.get("c")).toBeUndefined();
  });
});

describe("random and weightedRandom", () => {
  it("spreads picks evenly within 5%", () => {
    const nodes = [node("a"), node("b"), node("c"), node("d")];
    const got = counts(random({ random: seededRandom(1) }), nodes, 40_000);
    for (const n of nodes) expect(Math.abs(got.get(n.address)! - 10_000)).toBeLessThan(500);
  });

  it("respects weights within 5%", () => {
    const nodes = [node("a", 100), node("b", 200), node("c", 700)];
    const got = counts(weightedRandom({ random: seededRandom(2) }), nodes, 50_000);
    expect(got.get("a")! / 50_000).toBeCloseTo(0.1, 1);
    expect(got.get("b")! / 50_000).toBeCloseTo(0.2, 1);
    expect(got.get("c")! / 50_000).toBeCloseTo(0.7, 1);
  });

  it("passes over a node backing off", () => {
    const nodes = [node("a"), node("b")];
    nodes[0]!.backingOff = true;
    expect(counts(weightedRandom({ random: seededRandom(3) }), nodes, 100).get("b")).toBe(100);
    expect(counts(random({ random: seededRandom(3) }), nodes, 100).get("b")).toBe(100);
  });

  it("keeps the others' shares exact while a node backs off, and follows a new list's weights", () => {
    const nodes = [node("a", 100), node("b", 300), node("c", 600), node("d", 0)];
    nodes[2]!.backingOff = true;
    const balancer = weightedRandom({ random: seededRandom(4) });
    const got = counts(balancer, nodes, 40_000);
    expect(got.get("a")! / 40_000).toBeCloseTo(0.25, 1);
    expect(got.get("b")! / 40_000).toBeCloseTo(0.75, 1);
    expect(got.has("c") || got.has("d")).toBe(false);
    // a membership replaces its list when a weight changes: the sums follow the new list
    const next = [node("a", 900), node("b", 100)];
    const after = counts(balancer, next, 20_000);
    expect(after.get("a")! / 20_000).toBeCloseTo(0.9, 1);
  });
});

const keyed = (key: string): Call => {
  const c = clientCall(get, {});
  c.headers.set("user", key);
  return c;
};
const userKey = (c: Call) => c.headers.get("user") ?? undefined;

describe("hashBy", () => {
  it("sends the same key to the same node, and the next node when it backs off", () => {
    const nodes = [node("a"), node("b"), node("c")];
    const h = hashBy({ key: userKey });
    const first = h.pick(nodes, keyed("u1"))!.node;
    for (let i = 0; i < 10; i++) expect(h.pick(nodes, keyed("u1"))!.node).toBe(first);
    first.backingOff = true;
    expect(h.pick(nodes, keyed("u1"))!.node).not.toBe(first);
  });
});

describe("consistentHash", () => {
  const keys = Array.from({ length: 20_000 }, (_, i) => `user-${i}`);
  const owners = (nodes: readonly Node[]) => {
    const ch = consistentHash({ key: userKey });
    return keys.map((k) => ch.pick(nodes, keyed(k))!.node.address);
  };

  it("moves about 1/N of the keys when a node is added or removed, only to or from that node", () => {
    const five = ["a", "b", "c", "d", "e"].map((a) => node(`10.0.0.${a}:4000`));
    const six = [...five, node("10.0.0.f:4000")];
    const before = owners(five);
    const after = owners(six);
    let moved = 0;
    for (let i = 0; i < keys.length; i++) {
      if (before[i] === after[i]) continue;
      moved++;
      expect(after[i]).toBe("10.0.0.f:4000");
    }
    // measured: about 1/6 of the keys move to the new node
    expect(moved / keys.length).toBeGreaterThan(0.12);
    expect(moved / keys.length).toBeLessThan(0.22);
    // removing it again moves exactly those keys back
    expect(owners(five)).toEqual(before);
    const four = five.slice(1);
    const removed = owners(four);
    let movedOnRemove = 0;
    for (let i = 0; i < keys.length; i++) {
      if (before[i] !== removed[i]) {
        movedOnRemove++;
        expect(before[i]).toBe(five[0]!.address);
      }
    }
    expect(movedOnRemove / keys.length).toBeGreaterThan(0.15);
    expect(movedOnRemove / keys.length).toBeLessThan(0.25);
  });

  it("weighs nodes by their points on the ring", () => {
    const nodes = [node("a:1", 100), node("b:1", 300)];
    const got = owners(nodes).filter((a) => a === "b:1").length / keys.length;
    expect(got).toBeGreaterThan(0.65);
    expect(got).toBeLessThan(0.85);
    expect(buildRing(nodes, 160).hashes.length).toBe(640);
  });

  it("maps a key to the same node in another process", () => {
    const nodes = ["a", "b", "c", "d"].map((a) => node(`${a}.svc:4000`));
    const sample = keys.slice(0, 200);
    const ch = consistentHash({ key: userKey });
    const here = sample.map((k) => ch.pick(nodes, keyed(k))!.node.address);
    const script = join(import.meta.dirname, "hash-child.fixture.ts");
    const there = execFileSync(process.execPath, [script, JSON.stringify(nodes.map((n) => n.address))], {
      encoding: "utf8",
    });
    expect(JSON.parse(there)).toEqual(here);
    expect(stableHash("user-1")).toBe(stableHash("user-1"));
  });
});

describe("leastActive", () => {
  it("prefers the idle node and counts calls until done", () => {
    const nodes = [node("a"), node("b"), node("c")];
    const la = leastActive({ random: seededRandom(4) });
    expect(la.feedback).toBe(true);
    const first = la.pick(nodes, call)!;
    const second = la.pick(nodes, call)!;
    const third = la.pick(nodes, call)!;
    expect(new Set([first.node, second.node, third.node]).size).toBe(3);
    second.done({ latencyMs: 3, error: undefined });
    second.done({ latencyMs: 3, error: undefined }); // a second report is ignored
    for (let i = 0; i < 5; i++) {
      const p = la.pick(nodes, call)!;
      expect(p.node).toBe(second.node);
      p.done({ latencyMs: 1, error: undefined });
    }
  });
});

describe("p2cEwma", () => {
  /**
   * Load on four nodes, one of them slow (100 ms instead of 1 ms) while `slow` is set: `perMs` calls
   * start each millisecond of fake time and each ends after its node's latency.
   */
  function simulate(ms: number, state: { now: number; slow: boolean }, balancer: Balancer, nodes: Node[]) {
    const got = new Map<string, number>();
    const perMs = 4;
    for (let t = 0; t < ms; t++) {
      state.now++;
      for (let i = inFlight.length - 1; i >= 0; i--) {
        const f = inFlight[i]!;
        if (f.due > state.now) continue;
        f.done({ latencyMs: f.latency, error: undefined });
        inFlight.splice(i, 1);
      }
      for (let i = 0; i < perMs; i++) {
        const picked = balancer.pick(nodes, call)!;
        const latency = state.slow && picked.node === nodes[0] ? 100 : 1;
        got.set(picked.node.address, (got.get(picked.node.address) ?? 0) + 1);
        inFlight.push({ due: state.now + latency, latency, done: (info) => picked.done(info) });
      }
    }
    return got;
  }
  const inFlight: { due: number; latency: number; done: (info: DoneInfo) => void }[] = [];

  it("moves at least 90% of a slow node's share away within 2 s, and gives it back after recovery", () => {
    const nodes = [node("slow"), node("b"), node("c"), node("d")];
    const state = { now: 0, slow: false };
    const p2c = p2cEwma({ random: seededRandom(5), now: () => state.now });
    const even = simulate(2000, state, p2c, nodes);
    expect(even.get("slow")! / 8000).toBeGreaterThan(0.2);
    state.slow = true;
    simulate(1000, state, p2c, nodes); // the first second: the averages move
    const slowed = simulate(1000, state, p2c, nodes);
    // at most 10% of its even share (a quarter of 4,000 calls) is left on the slow node
    expect(slowed.get("slow") ?? 0).toBeLessThan(0.25 * 4000 * 0.1);
    state.slow = false;
    simulate(4000, state, p2c, nodes); // a forced pick within 3 s measures it again
    const back = simulate(2000, state, p2c, nodes);
    // most of its share (a quarter) comes back
    expect(back.get("slow")! / 8000).toBeGreaterThan(0.15);
  });

  it("shuns a node that fails", () => {
    const nodes = [node("bad"), node("good")];
    const state = { now: 0 };
    const p2c = p2cEwma({ random: seededRandom(6), now: () => state.now });
    const got = new Map<string, number>();
    for (let t = 0; t < 2000; t++) {
      state.now++;
      const picked = p2c.pick(nodes, call)!;
      got.set(picked.node.address, (got.get(picked.node.address) ?? 0) + 1);
      const error = picked.node === nodes[0] ? new WeftError(Code.UNAVAILABLE, "down") : undefined;
      picked.done({ latencyMs: 1, error });
    }
    expect(got.get("bad")! / 2000).toBeLessThan(0.1);
  });

  it("draws no random number when one node can take the call, and keeps that node's averages", () => {
    const random = vi.fn(() => 0);
    const state = { now: 0 };
    const p2c = p2cEwma({ random, now: () => state.now });
    const [a, b] = [node("a"), node("b")];
    for (let t = 0; t < 100; t++) {
      state.now += 10;
      p2c.pick([a], call)!.done({ latencyMs: 100, error: undefined });
    }
    expect(random).not.toHaveBeenCalled();
    // a second node: `a`, drawn first (random 0), loses to it on the latency it learned alone
    expect(p2c.pick([a, b], call)!.node).toBe(b);
    expect(random).toHaveBeenCalled();
  });

  it("gives the cluster its pick's time on its default clock only", () => {
    const clock = vi.spyOn(performance, "now").mockReturnValue(42);
    try {
      expect(p2cEwma().pick([node("a")], call)!.pickedAt).toBe(42);
      expect(p2cEwma({ now: () => 7 }).pick([node("a")], call)!.pickedAt).toBeUndefined();
      expect(leastActive().pick([node("a")], call)!.pickedAt).toBeUndefined();
    } finally {
      clock.mockRestore();
    }
  });

  it("reads its default clock once per call: the attempt ends at its pick's time plus its latency", () => {
    const nodes = [node("a"), node("b")];
    const clock = vi.spyOn(performance, "now");
    try {
      const p2c = p2cEwma({ random: seededRandom(7) });
      const picked = p2c.pick(nodes, call)!;
      picked.done({ latencyMs: 3, error: undefined });
      expect(clock).toHaveBeenCalledTimes(1);
    } finally {
      clock.mockRestore();
    }
  });
});

describe("options", () => {
  it("refuses bad options with a ConfigError naming them", () => {
    expect(() => random({ random: 3 as never })).toThrow(ConfigError);
    expect(() => random({ random: 3 as never })).toThrow(/random/);
    expect(() => hashBy({} as never)).toThrow(/key/);
    expect(() => consistentHash({ key: userKey, replicas: 0 })).toThrow(/replicas/);
    expect(() => p2cEwma({ decayMs: -1 })).toThrow(/decayMs/);
    expect(() => p2cEwma({ forcePickMs: Number.NaN })).toThrow(/forcePickMs/);
    expect(() => p2cEwma({ now: 1 as never })).toThrow(/now/);
  });
});
