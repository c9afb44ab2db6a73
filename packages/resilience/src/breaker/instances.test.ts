import { type Call, type CallResult, Code, ConfigError, Metadata, Reason, WeftError } from "@weft/core";
import { Cluster, type TransportNode } from "@weft/core/internal";
import { describe, expect, it } from "vitest";
import { type Deferred, deferred } from "../../../core/test/deferred.ts";
import { clientCall } from "../../test/call.ts";
import { instanceBreakers } from "./instances.ts";
import { consecutiveFailures, failureRatio } from "./rules.ts";

/** A node without sockets: answers with its address, or fails with UNAVAILABLE while `failing`. */
class Node implements TransportNode {
  readonly address: string;
  ready = true;
  backingOff = false;
  failing = false;
  calls = 0;
  constructor(address: string) {
    this.address = address;
  }
  connect(): Promise<unknown> {
    return Promise.resolve();
  }
  call(): Promise<CallResult> {
    this.calls++;
    if (this.failing) return Promise.reject(new WeftError(Code.UNAVAILABLE, "down"));
    return Promise.resolve({
      stream: false,
      headers: new Metadata(),
      message: this.address,
      trailers: new Metadata(),
    });
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

const call = clientCall({ path: "/test.Svc/get", name: "get", kind: "unary" } as unknown as Call["method"]);

async function outcome(cluster: Cluster): Promise<string> {
  try {
    const r = await cluster.call(call);
    return r.stream ? "stream" : String(r.message);
  } catch (e) {
    return e instanceof WeftError && e.reason === Reason.CIRCUIT_OPEN ? "rejected" : "failed";
  }
}

describe("instanceBreakers", () => {
  it("skips a node whose breaker is open, probes it after openMs, and takes it back once it heals", async () => {
    const clock = { t: 0 };
    const nodes = [new Node("a"), new Node("b"), new Node("c")];
    const nodeHealth = instanceBreakers({
      rule: consecutiveFailures({ failures: 2 }),
      openMs: 1000,
      now: () => clock.t,
    });
    const cluster = new Cluster(nodes, { nodeHealth });
    nodes[1]!.failing = true;
    const first: string[] = [];
    for (let i = 0; i < 6; i++) first.push(await outcome(cluster));
    expect(first.slice(0, 5)).toEqual(["a", "failed", "c", "a", "failed"]); // b failed twice: open
    expect(first[5]).not.toBe("failed");
    expect(nodeHealth.restricting).toBe(true);
    const open: string[] = [];
    for (let i = 0; i < 20; i++) open.push(await outcome(cluster));
    expect(open).not.toContain("b");
    expect(open).not.toContain("failed");
    expect(nodes[1]!.calls).toBe(2);
    clock.t += 1000;
    nodes[1]!.failing = false;
    const healed: string[] = [];
    for (let i = 0; i < 6; i++) healed.push(await outcome(cluster));
    expect(healed.filter((n) => n === "b")).toHaveLength(2); // the probe, then its fair share
    expect(nodeHealth.restricting).toBe(false);
  });

  it("fails fast with CIRCUIT_OPEN when every node's breaker is open, sending nothing", async () => {
    const clock = { t: 0 };
    const nodes = [new Node("a"), new Node("b")];
    for (const n of nodes) n.failing = true;
    const nodeHealth = instanceBreakers({
      rule: consecutiveFailures({ failures: 1 }),
      openMs: 1000,
      now: () => clock.t,
    });
    const cluster = new Cluster(nodes, { nodeHealth });
    expect([await outcome(cluster), await outcome(cluster)]).toEqual(["failed", "failed"]);
    const error = await cluster.call(call).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: Code.UNAVAILABLE, reason: Reason.CIRCUIT_OPEN });
    expect(nodes.map((n) => n.calls)).toEqual([1, 1]);
    clock.t += 1000;
    nodes[0]!.failing = false;
    expect(await outcome(cluster)).toBe("a"); // a's probe
  });

  it("drops the breaker of a node that left the cluster, and a late outcome of that node makes none", async () => {
    const nodes = [new Node("a"), new Node("b")];
    const source = {
      nodes: nodes as readonly TransportNode[],
      firstSet: undefined,
      noNodeError: () => new WeftError(Code.UNAVAILABLE, "no node"),
      close: () => Promise.resolve(),
    };
    const nodeHealth = instanceBreakers({ rule: consecutiveFailures({ failures: 1 }), openMs: 1000 });
    const cluster = new Cluster(source, { nodeHealth });
    nodes[1]!.failing = true;
    expect([await outcome(cluster), await outcome(cluster)]).toEqual(["a", "failed"]);
    expect(nodeHealth.restricting).toBe(true); // b's breaker is open
    source.nodes = [nodes[0]!]; // the registry dropped b
    expect(await outcome(cluster)).toBe("a");
    expect(nodeHealth.restricting).toBe(false); // b's open breaker went with it
    // an attempt that was in flight on b fails after b left: no breaker for b again
    nodeHealth.done(nodes[1]!, { latencyMs: 1, error: new WeftError(Code.UNAVAILABLE, "down") }, 0);
    expect(nodeHealth.restricting).toBe(false);
    source.nodes = [nodes[0]!, nodes[1]!]; // b is back: it starts with a closed breaker
    expect(nodeHealth.allows(nodes[1]!)).toBe(true);
  });

  it("checks its options", () => {
    expect(() => instanceBreakers({ rule: consecutiveFailures(), openMs: Number.NaN })).toThrow(ConfigError);
  });
});

describe("instanceBreakers: each attempt counts by the state of its node's breaker that admitted it", () => {
  /** A node whose calls stay in flight until the test settles them. */
  class HeldNode extends Node {
    readonly held: Deferred<CallResult>[] = [];
    override call(): Promise<CallResult> {
      this.calls++;
      const pending = deferred<CallResult>();
      this.held.push(pending);
      return pending.promise;
    }
    /** Settles its `i`th call: with its address, or failed with UNAVAILABLE. */
    settle(i: number, failed: boolean): void {
      if (failed) this.held[i]!.reject(new WeftError(Code.UNAVAILABLE, "down"));
      else
        this.held[i]!.resolve({
          stream: false,
          headers: new Metadata(),
          message: this.address,
          trailers: new Metadata(),
        });
    }
  }

  /**
   * Nodes a and b round robin, b's breaker opened (one failure, openMs 1000 on a fake clock) while
   * its `late` call, sent while it was closed, is still in flight; then b's probe is out.
   */
  async function probing(rule = consecutiveFailures({ failures: 1 })) {
    const clock = { t: 0 };
    const a = new Node("a");
    const b = new HeldNode("b");
    const states: string[] = [];
    const nodeHealth = instanceBreakers({
      rule,
      openMs: 1000,
      now: () => clock.t,
      telemetry: {
        event(name, attributes) {
          const s = attributes as { name: string; from: string; to: string };
          if (name === "breaker.state") states.push(`${s.name}: ${s.from} → ${s.to}`);
        },
      },
    });
    const cluster = new Cluster([a, b], { nodeHealth });
    expect(await outcome(cluster)).toBe("a");
    const late = outcome(cluster); // b, still closed
    expect(await outcome(cluster)).toBe("a");
    const trip = outcome(cluster); // b
    b.settle(1, true);
    expect(await trip).toBe("failed");
    expect(states).toEqual(["b: closed → open"]);
    clock.t += 1000;
    const probes: Promise<string>[] = [];
    // round robin comes back to b within two calls: the first call b takes is its probe
    while (b.calls < 3) probes.push(outcome(cluster));
    const probe = probes.at(-1)!;
    expect(states).toEqual(["b: closed → open", "b: open → half-open"]);
    return { cluster, a, b, late, probe, states };
  }

  /** The nodes the next `n` calls go to while b's probe is out (b takes none). */
  async function next(cluster: Cluster, n: number): Promise<string[]> {
    const seen: string[] = [];
    for (let i = 0; i < n; i++) seen.push(await outcome(cluster));
    return seen;
  }

  for (const [name, rule] of [
    ["consecutive failures", () => consecutiveFailures({ failures: 1 })],
    ["failure ratio", () => failureRatio({ ratio: 0.5, minRequests: 1 })],
  ] as const) {
    it(`${name}: a late success of a node does not close its half-open breaker; its probe's does`, async () => {
      const { cluster, b, late, probe, states } = await probing(rule());
      b.settle(0, false);
      expect(await late).toBe("b");
      expect(states).toEqual(["b: closed → open", "b: open → half-open"]);
      expect(await next(cluster, 4)).toEqual(["a", "a", "a", "a"]); // b's one probe slot is taken
      b.settle(2, false);
      expect(await probe).toBe("b");
      expect(states.at(-1)).toBe("b: half-open → closed");
    });

    it(`${name}: a late failure of a node does not reopen its breaker while its probe is out`, async () => {
      const { cluster, b, late, probe, states } = await probing(rule());
      b.settle(0, true);
      expect(await late).toBe("failed");
      expect(states).toEqual(["b: closed → open", "b: open → half-open"]);
      b.settle(2, false);
      expect(await probe).toBe("b");
      expect(states.at(-1)).toBe("b: half-open → closed");
      const after = [outcome(cluster), outcome(cluster)]; // round robin: one of them goes to b
      expect(b.calls).toBe(4);
      b.settle(3, false);
      expect((await Promise.all(after)).sort()).toEqual(["a", "b"]);
    });
  }

  it("a late outcome of a node that left and came back does not count with its new breaker", async () => {
    const a = new Node("a");
    const b = new HeldNode("b");
    const source = {
      nodes: [a, b] as readonly TransportNode[],
      firstSet: undefined,
      noNodeError: () => new WeftError(Code.UNAVAILABLE, "no node"),
      close: () => Promise.resolve(),
    };
    const nodeHealth = instanceBreakers({ rule: consecutiveFailures({ failures: 1 }), openMs: 1000 });
    const cluster = new Cluster(source, { nodeHealth });
    expect(await outcome(cluster)).toBe("a");
    const late = outcome(cluster); // b, then b leaves with the call in flight
    source.nodes = [a];
    expect(await outcome(cluster)).toBe("a");
    source.nodes = [a, b]; // b is back, with a new breaker that admits a call
    const calls: Promise<string>[] = [];
    while (b.calls < 2) calls.push(outcome(cluster));
    b.settle(0, true); // the call sent before b left fails
    expect(await late).toBe("failed");
    expect(nodeHealth.restricting).toBe(false);
    b.settle(1, false);
    expect(await calls.at(-1)).toBe("b");
  });

  it("a probe's own failure reopens the node's breaker", async () => {
    const { cluster, b, late, probe, states } = await probing();
    b.settle(0, false);
    await late;
    b.settle(2, true);
    expect(await probe).toBe("failed");
    expect(states.at(-1)).toBe("b: half-open → open");
    expect(await next(cluster, 4)).toEqual(["a", "a", "a", "a"]);
  });
});
