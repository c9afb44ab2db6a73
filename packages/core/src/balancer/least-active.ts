import type { Call } from "../interceptor/call.ts";
import {
  type Balancer,
  type BalancerNode,
  type DoneInfo,
  functionOption,
  isNodeFailure,
  numberOption,
  type Picked,
  type RandomOptions,
  randomSource,
  skipped,
  weightOf,
} from "./balancer.ts";

/** What a feedback balancer keeps of one node. */
class NodeStats {
  /** Calls picked for the node and not reported done yet. */
  active = 0;
  /** EWMA of the latency, milliseconds. Starts at 0, so a new node is tried soon. */
  lag = 0;
  /** EWMA of the success ratio, in [0, 1]. Starts at 1. */
  success = 1;
  /** When `lag` and `success` were last updated, and when the node was last picked (the clock's ms). */
  stamp: number;
  picked: number;

  constructor(now: number) {
    this.stamp = now;
    this.picked = now;
  }
}

/** What a feedback balancer's picks report to. */
interface StatsOwner {
  /** Folds the attempt of a pick made at `pickedAt` (the balancer's clock; 0 when it did not read it) in. */
  report(stats: NodeStats, info: DoneInfo, pickedAt: number): void;
}

/** A pick of a feedback balancer: reports the attempt back to the node's stats, once. */
class StatsPick<N extends BalancerNode> implements Picked<N> {
  readonly node: N;
  readonly pickedAt: number | undefined;
  readonly #stats: NodeStats;
  readonly #owner: StatsOwner;
  readonly #at: number;
  #open = true;

  /** `at` is the owner's clock at the pick; `pickedAt` the same time when that clock is `performance.now`. */
  constructor(node: N, stats: NodeStats, owner: StatsOwner, at: number, pickedAt: number | undefined) {
    this.node = node;
    this.pickedAt = pickedAt;
    this.#stats = stats;
    this.#owner = owner;
    this.#at = at;
  }

  done(info: DoneInfo): void {
    if (!this.#open) return;
    this.#open = false;
    this.#stats.active--;
    this.#owner.report(this.#stats, info, this.#at);
  }
}

/**
 * Least active requests: the node with the fewest calls in flight per unit of weight
 * (`active / weight`); ties go to the first such node from a random starting point. Needs feedback
 * (`done` ends a call's activity).
 */
export function leastActive(options: RandomOptions = {}): Balancer {
  return new LeastActive(randomSource(options));
}

class LeastActive implements Balancer {
  readonly feedback = true;
  readonly #random: () => number;
  readonly #stats = new WeakMap<BalancerNode, NodeStats>();

  constructor(random: () => number) {
    this.#random = random;
  }

  pick<N extends BalancerNode>(nodes: readonly N[], _call: Call): Picked<N> | undefined {
    const n = nodes.length;
    const start = Math.floor(this.#random() * n);
    let best: N | undefined;
    let bestStats: NodeStats | undefined;
    let bestLoad = Number.POSITIVE_INFINITY;
    for (let i = 0; i < n; i++) {
      const node = nodes[(start + i) % n]!;
      const weight = weightOf(node);
      if (weight === 0 || skipped(node, n)) continue;
      const stats = statsOf(this.#stats, node, 0);
      const load = stats.active / weight;
      if (load < bestLoad) {
        bestLoad = load;
        best = node;
        bestStats = stats;
      }
    }
    if (best === undefined || bestStats === undefined) return undefined;
    bestStats.active++;
    return new StatsPick(best, bestStats, this, 0, undefined);
  }

  report(_stats: NodeStats, _info: DoneInfo, _pickedAt: number): void {}
}

function statsOf(map: WeakMap<BalancerNode, NodeStats>, node: BalancerNode, now: number): NodeStats {
  let stats = map.get(node);
  if (stats === undefined) {
    stats = new NodeStats(now);
    map.set(node, stats);
  }
  return stats;
}

export interface P2cOptions extends RandomOptions {
  /** The decay time constant τ of the latency and success averages, ms. Default 600 (as Kratos). */
  decayMs?: number;
  /** A node not picked for this long is picked when drawn, whatever its score, ms. Default 3000. */
  forcePickMs?: number;
  /** Added to the latency average before its square root, so idle fast nodes still compare, ms. Default 5. */
  penaltyMs?: number;
  /** The clock, milliseconds. Default `performance.now`; inject a fake one in tests. */
  now?: () => number;
}

/**
 * Power of two choices over EWMA latency and success rate. Each pick draws two distinct nodes at
 * random and takes the one with the higher score
 *
 *   score = success × weight / (√(lag + penaltyMs) × (active + 1))
 *
 * unless the other has not been picked for `forcePickMs` (then it gets the call, so a node that was
 * slow is measured again). `done` folds the attempt into the node's averages with a weight that
 * decays with the time since the last update: `w = e^(−Δt/τ)`, `lag = w·lag + (1−w)·latency`,
 * `success = w·success + (1−w)·(ok ? 1 : 0)`, where only errors about the node's health (unavailable,
 * deadline exceeded, resource exhausted, internal, unknown, data loss) count as failures.
 */
export function p2cEwma(options: P2cOptions = {}): Balancer {
  const decay = numberOption("decayMs", options.decayMs, 600, Number.MIN_VALUE);
  const force = numberOption("forcePickMs", options.forcePickMs, 3000, 0);
  const penalty = numberOption("penaltyMs", options.penaltyMs, 5, 0);
  const now =
    options.now === undefined
      ? () => performance.now()
      : functionOption("now", options.now, "a clock in milliseconds");
  return new P2cEwma(randomSource(options), now, options.now === undefined, decay, force, penalty);
}

class P2cEwma implements Balancer {
  readonly feedback = true;
  readonly #random: () => number;
  readonly #now: () => number;
  /**
   * The clock is `performance.now`, the one the cluster times attempts on: an attempt ends at its
   * pick's time plus its latency, with no second clock read per call.
   */
  readonly #sameClock: boolean;
  readonly #decay: number;
  readonly #force: number;
  readonly #penalty: number;
  readonly #stats = new WeakMap<BalancerNode, NodeStats>();

  constructor(
    random: () => number,
    now: () => number,
    sameClock: boolean,
    decay: number,
    force: number,
    penalty: number,
  ) {
    this.#random = random;
    this.#now = now;
    this.#sameClock = sameClock;
    this.#decay = decay;
    this.#force = force;
    this.#penalty = penalty;
  }

  pick<N extends BalancerNode>(nodes: readonly N[], _call: Call): Picked<N> | undefined {
    const n = nodes.length;
    // one node: nothing to draw
    const a = this.#draw(nodes, n === 1 ? 0 : Math.floor(this.#random() * n), -1);
    if (a < 0) return undefined;
    const b = n < 2 ? -1 : this.#draw(nodes, (a + 1 + Math.floor(this.#random() * (n - 1))) % n, a);
    const now = this.#now();
    const nodeA = nodes[a]!;
    const statsA = statsOf(this.#stats, nodeA, now);
    if (b < 0) return this.#take(nodeA, statsA, now);
    const nodeB = nodes[b]!;
    const statsB = statsOf(this.#stats, nodeB, now);
    if (this.#score(nodeA, statsA) >= this.#score(nodeB, statsB)) {
      return now - statsB.picked > this.#force
        ? this.#take(nodeB, statsB, now)
        : this.#take(nodeA, statsA, now);
    }
    return now - statsA.picked > this.#force
      ? this.#take(nodeA, statsA, now)
      : this.#take(nodeB, statsB, now);
  }

  /** The first usable node from `start` on, other than `other`; -1 when there is none. */
  #draw(nodes: readonly BalancerNode[], start: number, other: number): number {
    const n = nodes.length;
    for (let i = 0; i < n; i++) {
      const index = (start + i) % n;
      const node = nodes[index]!;
      if (index !== other && weightOf(node) > 0 && !skipped(node, n)) return index;
    }
    return -1;
  }

  #score(node: BalancerNode, stats: NodeStats): number {
    return (stats.success * weightOf(node)) / (Math.sqrt(stats.lag + this.#penalty) * (stats.active + 1));
  }

  #take<N extends BalancerNode>(node: N, stats: NodeStats, now: number): Picked<N> {
    stats.active++;
    stats.picked = now;
    return new StatsPick(node, stats, this, now, this.#sameClock ? now : undefined);
  }

  report(stats: NodeStats, info: DoneInfo, pickedAt: number): void {
    const now = this.#sameClock ? pickedAt + Math.max(info.latencyMs, 0) : this.#now();
    const w = Math.exp(-Math.max(now - stats.stamp, 0) / this.#decay);
    stats.stamp = now;
    stats.lag = w * stats.lag + (1 - w) * Math.max(info.latencyMs, 0);
    stats.success = w * stats.success + (1 - w) * (isNodeFailure(info.error) ? 0 : 1);
  }
}
