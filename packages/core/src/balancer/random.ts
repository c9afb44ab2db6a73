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
 * A node drawn at random with probability `weight / Σ weight` over the nodes not backing off (one
 * draw, one pass to sum the weights and one to find the node). No feedback.
 */
export function weightedRandom(options: RandomOptions = {}): Balancer {
  return new WeightedRandom(randomSource(options));
}

class WeightedRandom implements Balancer {
  readonly feedback = false;
  readonly #slot = new Slot();
  readonly #random: () => number;

  constructor(random: () => number) {
    this.#random = random;
  }

  pick<N extends BalancerNode>(nodes: readonly N[], _call: Call): Picked<N> | undefined {
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
