/*
 * Per-method overrides of a cluster's policies, keyed by the method's wire path
 * (`/catalog.v1.Catalog/Lookup`) or its bare name (`Lookup`); the path wins.
 */
import type { Balancer } from "../balancer/balancer.ts";
import type { ClusterMode } from "./modes.ts";
import type { RouteFilter } from "./routing.ts";

/** What one method overrides of its cluster's options. */
export interface MethodPolicy {
  /** The balancer of this method's calls instead of the cluster's. */
  balancer?: Balancer;
  /** This method's routing filters instead of the cluster's (`[]`: none). */
  routing?: readonly RouteFilter[];
  /** This method's cluster mode instead of the cluster's. */
  mode?: ClusterMode;
}
