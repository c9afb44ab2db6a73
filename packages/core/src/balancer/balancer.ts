/*
 * The balancer seam: a cluster asks its balancer for the node of each call and, when the balancer
 * wants feedback, reports how the call went on that node. Balancers read the node list they are
 * given and keep their own per-node state (in-flight counts, latency averages) through pick/done.
 */
import { Code } from "../errors/code.ts";
import { ConfigError, WeftError } from "../errors/weft-error.ts";
import type { Call } from "../interceptor/call.ts";

/** What a balancer reads of a node. `TransportNode` satisfies it. */
export interface BalancerNode {
  /** The node's identity (`host:port`, a base URL); what consistent hashing places on its ring. */
  readonly address: string;
  /** Relative share of traffic for weight-aware balancers. Default 100; 0 takes no traffic. */
  readonly weight?: number | undefined;
  /** True while the node waits out a reconnect backoff: balancers skip it when another node exists. */
  readonly backingOff: boolean;
}

/** How one call went on the node it was sent to, reported once per attempt. */
export interface DoneInfo {
  /** Milliseconds from sending the call to its result (the response headers, for a stream) or error. */
  readonly latencyMs: number;
  /** Why the attempt failed, or `undefined` when it succeeded. */
  readonly error: unknown;
}

/** A node chosen for one call, and where to report how that call went. */
export interface Picked<N extends BalancerNode = BalancerNode> {
  readonly node: N;
  /**
   * `performance.now()` when the balancer made the pick, if it read that clock: an attempt the
   * cluster sends at once is timed from it, with no second clock read.
   */
  readonly pickedAt?: number | undefined;
  /** Called by the cluster exactly once per attempt, only when the balancer declares `feedback`. */
  done(info: DoneInfo): void;
}

/**
 * Chooses the node of each call. A custom balancer implements the same interface as the built-in
 * ones.
 */
export interface Balancer {
  /**
   * True when `done` must be called: the cluster then times each attempt and observes its outcome.
   * A balancer without feedback costs the cluster nothing per call beyond `pick`, and may return the
   * same `Picked` object every time (the cluster reads `node` at once and never keeps it).
   */
  readonly feedback: boolean;
  /**
   * The node for `call` among `nodes` (the candidates, in a stable order), or `undefined` when none
   * should take it now.
   */
  pick<N extends BalancerNode>(nodes: readonly N[], call: Call): Picked<N> | undefined;
}

/** Options shared by the balancers that draw random numbers. */
export interface RandomOptions {
  /** The random source: returns a number in [0, 1). Default `Math.random`; inject one in tests. */
  random?: () => number;
}

/** A node's weight (default 100); a missing, negative or non-finite weight reads as its default or 0. */
export function weightOf(node: BalancerNode): number {
  const w = node.weight;
  if (w === undefined) return 100;
  return w > 0 && Number.isFinite(w) ? w : 0;
}

/** True when `node` should be passed over: it is backing off and it is not the only candidate. */
export function skipped(node: BalancerNode, count: number): boolean {
  return node.backingOff && count > 1;
}

const noop = (): void => {};

/**
 * The one `Picked` a feedback-free balancer hands out for every call: refilled by `pick`, read at
 * once by the cluster. Keeps the fast path free of allocations.
 */
export class Slot<N extends BalancerNode = BalancerNode> implements Picked<N> {
  node: N = undefined as unknown as N;
  readonly done: (info: DoneInfo) => void = noop;

  fill<M extends BalancerNode>(node: M): Picked<M> {
    (this as unknown as Slot<M>).node = node;
    return this as unknown as Picked<M>;
  }
}

/** The random source of `options`, checked. */
export function randomSource(options: RandomOptions): () => number {
  const random = options.random ?? Math.random;
  if (typeof random !== "function")
    throw new ConfigError("random", "a function returning a number in [0, 1)", random);
  return random;
}

/** A number option, checked: finite and at least `min`. */
export function numberOption(name: string, value: number | undefined, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value < min) {
    throw new ConfigError(name, `a finite number ≥ ${min}`, value);
  }
  return value;
}

/** A function option, checked. */
export function functionOption<F>(name: string, value: F | undefined, expected: string): F {
  if (typeof value !== "function") throw new ConfigError(name, expected, value);
  return value;
}

/**
 * True when `error` says something about the node's health (it was unreachable, overloaded, slow or
 * broken), false for an application's own answer (not found, invalid argument…) or a cancellation.
 */
export function isNodeFailure(error: unknown): boolean {
  if (error === undefined) return false;
  if (!(error instanceof WeftError)) return true;
  switch (error.code) {
    case Code.UNAVAILABLE:
    case Code.DEADLINE_EXCEEDED:
    case Code.RESOURCE_EXHAUSTED:
    case Code.INTERNAL:
    case Code.UNKNOWN:
    case Code.DATA_LOSS:
      return true;
    default:
      return false;
  }
}
