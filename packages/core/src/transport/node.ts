import type { RetryRefused } from "../call/client-call.ts";
import type { Instance } from "../discovery/registry.ts";
import type { Call, CallResult } from "../interceptor/call.ts";

/**
 * One server a client talks to, over one protocol: its connections (dial, pool, keepalive,
 * reconnect backoff) and the calls on them. A node never chooses another server and never resends a
 * call; the cluster above it does both, so a balancer, routing filters, cluster modes or a
 * per-instance breaker work the same over every protocol.
 */
export interface TransportNode {
  /** The node's identity: the address it dials (`host:port`, a base URL). */
  readonly address: string;
  /**
   * The registry record this node was made from, set by the cluster when the node came from
   * discovery; `undefined` for a static address. Routing filters read its labels and zone.
   */
  instance?: Instance | undefined;
  /**
   * Relative share of traffic for weight-aware balancers: the instance's weight, reduced while it
   * warms up. `undefined` reads as 100.
   */
  weight?: number | undefined;
  /**
   * Calls in flight on it now. Optional: a cluster retiring a node that counts them closes it once
   * they have ended; one that does not is closed after the retirement grace.
   */
  readonly inFlight?: number;
  /** True while it can take a call at once, on a connection that is up: the cluster's fast path. */
  readonly ready: boolean;
  /**
   * True while it is waiting out a reconnect backoff with no connection up: a call would fail at
   * once, so a cluster with other nodes skips it.
   */
  readonly backingOff: boolean;
  /**
   * Resolves once the node can take a call (setting up a connection if it has none); rejects with
   * why it cannot (the connection failed, it is backing off, it is closed). The cluster waits for it
   * within the call's signal and deadline and tries another node when it rejects.
   */
  connect(): Promise<unknown>;
  /**
   * Starts `call` here (waiting for a connection if none is up). A call the server refused before
   * starting it goes to `retry` with `attempt + 1`, if given; otherwise it fails with REFUSED_STREAM.
   */
  call(call: Call, retry: RetryRefused | undefined, attempt: number): Promise<CallResult>;
  /**
   * Closes every connection, including one being set up; calls in flight fail with
   * UNAVAILABLE/TRANSPORT_CLOSED. Resolves once the connections are closed.
   */
  close(): Promise<void>;
}
