import { type MemoryPeer, type MemoryTransportOptions, memoryDialer } from "../transport/memory-transport.ts";
import { type Dialer, TcpNode, type TcpNodeOptions, tcpNodeSettings } from "../transport/tcp-node.ts";
import type { Transport } from "../transport/transport.ts";
import { Cluster, type ClusterPolicies, clusterOptionsOf } from "./cluster.ts";
import { nodesOf, type TargetOptions } from "./membership.ts";

/**
 * The options of `createTcpTransport`: where to connect (`TargetOptions`), how (`TcpNodeOptions`) and
 * the cluster's policies (`ClusterPolicies`: `balancer`, `routing`, `mode`, `methods`,
 * `maxRefusedRetries`, `nodeHealth`).
 */
export interface TcpTransportOptions extends TcpNodeOptions, TargetOptions, ClusterPolicies {}

/**
 * A transport over Weft's TCP protocol to one address, a static list, or the instances of a service
 * in a registry (`target: "local:///catalog.v1.Catalog"`: each instance's `addresses.weft`, followed
 * as instances come and go; see docs/discovery.md). One connection multiplexes many concurrent calls;
 * a small pool per address opens more under load. A broken connection is re-established with
 * exponential backoff; while an address is backing off, calls go to the others or fail fast with
 * `UNAVAILABLE`. A call refused by a server that is going away (it was never started) is retried on
 * another connection transparently.
 */
export function createTcpTransport(options: TcpTransportOptions): Transport {
  return new TcpTransport(options, null);
}

/** The Weft TCP transport: a cluster over one `TcpNode` per address, all dialed by `dialer`. */
export class TcpTransport extends Cluster {
  constructor(options: TcpTransportOptions, dialer: Dialer | null) {
    const settings = tcpNodeSettings(options, dialer);
    super(
      nodesOf(
        options,
        "weft",
        (address, service) => new TcpNode(address, settings, service),
        options.telemetry,
      ),
      clusterOptionsOf(options),
    );
  }
}

/**
 * A transport to a server in the same process with no socket in between: an in-memory byte pipe
 * carries the real Weft protocol, so everything but the kernel is exercised. For tests and for
 * embedding a service in its caller. Connecting to a server that is not serving (shutting down or
 * stopped) fails at once with `UNAVAILABLE`, like a refused TCP connection.
 */
export function createMemoryTransport(server: MemoryPeer, options: MemoryTransportOptions = {}): Transport {
  const node: TcpTransportOptions = { address: "memory:1", keepalive: options.keepalive ?? false };
  if (options.limits !== undefined) node.limits = options.limits;
  if (options.compression !== undefined) node.compression = options.compression;
  return new TcpTransport(node, memoryDialer(server));
}
