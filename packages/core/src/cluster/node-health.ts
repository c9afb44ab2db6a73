/*
 * The seam through which per-node health (a circuit breaker per instance, in @weft/resilience) narrows
 * the nodes a cluster's balancer may pick. The cluster consults it only when given one.
 */
import type { DoneInfo } from "../balancer/balancer.ts";
import type { WeftError } from "../errors/weft-error.ts";
import type { TransportNode } from "../transport/node.ts";

/**
 * Tells a cluster which nodes may take calls now and hears how every attempt went on each node.
 * Given as the cluster's `nodeHealth` option (`createTcpTransport({ nodeHealth })`); `instanceBreakers()`
 * of `@weft/resilience` is one. The cluster filters its candidates with `allows` only while
 * `restricting` is true, so a healthy cluster pays one property read per call.
 */
export interface NodeHealth {
  /** True while some node may be refused by `allows`; false lets the cluster skip the filter. */
  readonly restricting: boolean;
  /**
   * True when `node` may take a call now. Called for each candidate before the balancer picks, so
   * it must not claim anything (the balancer may pick another node): `started` does.
   */
  allows(node: TransportNode): boolean;
  /**
   * An attempt of a call goes to `node` (the one picked): claims, say, a half-open probe slot. Returns
   * the attempt's permit (say, the generation of the breaker state that admitted it), which the
   * cluster gives back to `done`.
   */
  started(node: TransportNode): number;
  /**
   * How that attempt went, with the permit `started` returned for it: called exactly once for every
   * `started`.
   */
  done(node: TransportNode, info: DoneInfo, permit: number): void;
  /** The error of a call every candidate node refuses (UNAVAILABLE, reason CIRCUIT_OPEN). */
  refusedError(): WeftError;
  /**
   * Optional: `nodes` left the cluster (the registry dropped them). What is kept for them can go; an
   * attempt still in flight on one of them may yet report `done`. Called once per change of the
   * node list, before the next call is routed.
   */
  nodesRemoved?(nodes: readonly TransportNode[]): void;
}
