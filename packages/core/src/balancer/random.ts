import type { Call } from "../interceptor/call.ts";
import {
  type Balancer,
  type BalancerNode,
  type Picked,
  type RandomOptions,
  randomSource,
  Slot,
  skipped,
  weightOf,
} from "./balancer.ts";

/** A node drawn uniformly at random; a node backing off hands its turn to the next one. No feedback. */
export function random(options: RandomOptions = {}): Balancer {
  return new RandomBalancer(randomSource(options));
}

class RandomBalancer implements Balancer {
  readonly feedback = false;
  readonly #slot = new Slot();
  readonly #random: () => number;

  constructor(random: () => number) {
    this.#random = random;
  }

  pick<N extends BalancerNode>(nodes: readonly N[], _call: Call): Picked<N> | undefined {
    const n = nodes.length;
    const start = Math.floor(this.#random() * n);
    for (let i = 0; i < n; i++) {
      const node = nodes[(start + i) % n]!;
      if (!skipped(node, n)) return this.#slot.fill(node);
    }
    return undefined;
  }
}

/**
 * A node drawn at random with probability `weight / Σ weight` over the nodes not backing off. The
 * running sums of the weights are kept for the last node list seen (a membership replaces its list
 * when a weight changes), so a draw is one binary search: O(log n). When the node drawn is backing
 * off, the draw is made again over the others only (two passes), which keeps the probabilities
 * exact. No feedback.
 */
export function weightedRandom(options: RandomOptions = {}): Balancer {
  return new WeightedRandom(randomSource(options));
}

class WeightedRandom implements Balancer {
  readonly feedback = false;
  readonly #slot = new Slot();
  readonly #random: () => number;
  /** The list the sums belong to, and `sums[i]` = the weights of nodes 0..i. */
  #list: readonly BalancerNode[] | undefined;
  #sums = new Float64Array(0);

  constructor(random: () => number) {
    this.#random = random;
  }

  pick<N extends BalancerNode>(nodes: readonly N[], _call: Call): Picked<N> | undefined {
    const n = nodes.length;
    if (n === 0) return undefined;
    if (this.#list !== nodes) {
      const sums = new Float64Array(n);
      let total = 0;
      for (let i = 0; i < n; i++) sums[i] = total += weightOf(nodes[i]!);
      this.#list = nodes;
      this.#sums = sums;
    }
    const sums = this.#sums;
    const total = sums[n - 1]!;
    if (total === 0) return undefined;
    const point = this.#random() * total;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (sums[mid]! > point) hi = mid;
      else lo = mid + 1;
    }
    const node = nodes[lo]!;
    return skipped(node, n) ? this.#pickAmongUsable(nodes) : this.#slot.fill(node);
  }

  /** The draw over the nodes not backing off only: one pass to sum their weights, one to find the node. */
  #pickAmongUsable<N extends BalancerNode>(nodes: readonly N[]): Picked<N> | undefined {
    const n = nodes.length;
    let total = 0;
    for (let i = 0; i < n; i++) {
      const node = nodes[i]!;
      if (!skipped(node, n)) total += weightOf(node);
    }
    if (total === 0) return undefined;
    let point = this.#random() * total;
    let last: N | undefined;
    for (let i = 0; i < n; i++) {
      const node = nodes[i]!;
      const weight = skipped(node, n) ? 0 : weightOf(node);
      if (weight === 0) continue;
      last = node;
      point -= weight;
      if (point < 0) return this.#slot.fill(node);
    }
    return last === undefined ? undefined : this.#slot.fill(last);
  }
}
