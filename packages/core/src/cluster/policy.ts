/*
 * Per-method overrides of a cluster's policies, keyed by the method's wire path
 * (`/catalog.v1.Catalog/Lookup`) or its bare name (`Lookup`); the path wins.
 */
import type { Balancer } from "../balancer/balancer.ts";

/** What one method overrides of its cluster's options. */
export interface MethodPolicy {
  /** The balancer of this method's calls instead of the cluster's. */
  balancer?: Balancer;
}
