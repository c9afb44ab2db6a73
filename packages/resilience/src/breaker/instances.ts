import type { DoneInfo, NodeHealth, WeftError } from "@weft/core";
import type { TransportNode } from "@weft/core/internal";
import { emit } from "@weft/core/internal";
import {
  type Breaker,
  type BreakerOptions,
  breakerSettings,
  circuitOpen,
  createBreaker,
  outcomeOf,
} from "./breaker.ts";

/**
 * One circuit breaker per node (instance) of a cluster, as its `nodeHealth` option: while a node's
 * breaker is open the balancer does not pick it; once its `openMs` is up the next call picked for it
 * is its probe. When every node's breaker refuses, a call fails at once with UNAVAILABLE, reason
 * CIRCUIT_OPEN. Breakers are named by node address and kept per node object, until the node leaves
 * the cluster (the registry dropped it): its breaker goes with it, open or not.
 *
 * ```ts
 * const transport = createTcpTransport({
 *   target: "local:///catalog.v1.Catalog",
 *   nodeHealth: instanceBreakers({ rule: consecutiveFailures({ failures: 5 }), openMs: 10_000 }),
 * });
 * ```
 */
export function instanceBreakers(options: BreakerOptions): NodeHealth {
  const settings = breakerSettings(options);
  const breakers = new WeakMap<TransportNode, Breaker>();
  /** Breakers that may refuse now; the cluster filters only while there is one. */
  const restricting = new Set<Breaker>();
  /** Nodes that left the cluster: a late outcome of theirs makes no breaker again. */
  const gone = new WeakSet<TransportNode>();
  const breakerOf = (node: TransportNode): Breaker => {
    let breaker = breakers.get(node);
    if (breaker === undefined) {
      breaker = createBreaker(node.address, settings);
      breakers.set(node, breaker);
      gone.delete(node); // back in the cluster
    }
    return breaker;
  };
  const track = (breaker: Breaker): void => {
    if (breaker.restricting) restricting.add(breaker);
    else restricting.delete(breaker);
  };
  return {
    get restricting() {
      return restricting.size > 0;
    },
    allows(node) {
      const breaker = breakerOf(node);
      const admits = breaker.admits();
      track(breaker);
      if (!admits) {
        breaker.rejected();
        if (settings.telemetry !== undefined)
          emit(settings.telemetry, "breaker.rejected", { name: breaker.name });
      }
      return admits;
    },
    started(node) {
      return breakerOf(node).take();
    },
    done(node: TransportNode, info: DoneInfo, permit: number) {
      if (gone.has(node)) return;
      const breaker = breakerOf(node);
      const failure = info.error === undefined ? false : outcomeOf(settings, info.error);
      breaker.done(permit, failure, info.latencyMs, settings.now());
      track(breaker);
    },
    refusedError(): WeftError {
      return circuitOpen("every node's circuit breaker is open");
    },
    nodesRemoved(nodes) {
      for (const node of nodes) {
        const breaker = breakers.get(node);
        if (breaker === undefined) continue;
        breakers.delete(node);
        restricting.delete(breaker);
        gone.add(node);
      }
    },
  };
}
