import type { Call } from "../interceptor/call.ts";
import { type Balancer, type BalancerNode, type Picked, Slot, skipped, weightOf } from "./balancer.ts";

/**
 * Round robin over the nodes, skipping those in reconnect backoff (a lone node is still picked: its
 * own error says why it cannot take the call and when it tries again). No feedback. The default.
 */
export function roundRobin(): Balancer {
  return new RoundRobin();
}

class RoundRobin implements Balancer {
  readonly feedback = false;
  readonly #slot = new Slot();
  #next = 0;

  pick<N extends BalancerNode>(nodes: readonly N[], _call: Call): Picked<N> | undefined {
    const n = nodes.length;
    for (let i = 0; i < n; i++) {
      const index = (this.#next + i) % n;
      const node = nodes[index]!;
      if (skipped(node, n)) continue;
      this.#next = (index + 1) % n;
      return this.#slot.fill(node);
    }
    return undefined;
  }
}

/**
 * Smooth weighted round robin (nginx's algorithm): on each pick every node's current weight grows by
 * its weight, the node with the highest current weight is chosen and loses the sum of all weights.
 * Over any `Σ weight` picks each node is chosen `weight` times, spread out (5/1/1 → a a b a c a a).
 * Nodes backing off and nodes of weight 0 are passed over. No feedback.
 */
export function smoothWeightedRoundRobin(): Balancer {
  return new SmoothWeightedRoundRobin();
}

class SmoothWeightedRoundRobin implements Balancer {
  readonly feedback = false;
  readonly #slot = new Slot();
  /** Current weight per node; a node that leaves the list leaves with its entry. */
  #current = new WeakMap<BalancerNode, number>();

  pick<N extends BalancerNode>(nodes: readonly N[], _call: Call): Picked<N> | undefined {
    const n = nodes.length;
    let total = 0;
    let best: N | undefined;
    let bestCurrent = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < n; i++) {
      const node = nodes[i]!;
      const weight = weightOf(node);
      if (weight === 0 || skipped(node, n)) continue;
      const current = (this.#current.get(node) ?? 0) + weight;
      this.#current.set(node, current);
      total += weight;
      if (current > bestCurrent) {
        bestCurrent = current;
        best = node;
      }
    }
    if (best === undefined) return undefined;
    this.#current.set(best, bestCurrent - total);
    return this.#slot.fill(best);
  }
}
