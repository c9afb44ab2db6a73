/*
 * The cluster: a `Transport` over single-node transports of one protocol. It chooses the node of
 * each call (a `Picker`: today round robin over a static list) and resends, elsewhere, a call a
 * server refused before starting it. A balancer, routing filters, cluster modes and per-instance
 * breakers belong here, never in a protocol's transport.
 */
import type { Balancer, Picked } from "../balancer/balancer.ts";
import { roundRobin as roundRobinBalancer } from "../balancer/round-robin.ts";
import type { RetryRefused } from "../call/client-call.ts";
import { isSpent } from "../call/deadline.ts";
import { settleWithin } from "../call/signal.ts";
import { Code } from "../errors/code.ts";
import { Reason } from "../errors/reason.ts";
import { ConfigError, WeftError } from "../errors/weft-error.ts";
import type { Call, CallResult } from "../interceptor/call.ts";
import type { MethodInfo } from "../service/service.ts";
import type { TransportNode } from "../transport/node.ts";
import type { Transport } from "../transport/transport.ts";
import type { MethodPolicy } from "./policy.ts";

/**
 * A plain node chooser without feedback: the node of a call among `nodes` (the candidates, in a
 * stable order), or `undefined` when none should take it now. A `Balancer` is the full seam; a
 * picker given to a cluster acts as a balancer without feedback.
 */
export interface Picker<N extends TransportNode = TransportNode> {
  pick(nodes: readonly N[], call: Call): N | undefined;
}

/** `roundRobin()` of the balancers, as a plain `Picker`. */
export function roundRobin(): Picker {
  const balancer = roundRobinBalancer();
  return { pick: (nodes, call) => balancer.pick(nodes, call)?.node };
}

/** A picker seen as a balancer without feedback (one reused `Picked`, no allocation per call). */
class PickerBalancer implements Balancer {
  readonly feedback = false;
  readonly #picker: Picker;
  readonly #picked = { node: undefined as unknown, done: (): void => {} };

  constructor(picker: Picker) {
    this.#picker = picker;
  }

  pick<N>(nodes: readonly N[], call: Call): Picked<N & TransportNode> | undefined {
    const node = this.#picker.pick(nodes as unknown as readonly TransportNode[], call);
    if (node === undefined) return undefined;
    this.#picked.node = node;
    return this.#picked as Picked<N & TransportNode>;
  }
}

/**
 * Where a cluster reads its nodes: a static list, or a membership following a registry. The cluster
 * reads `nodes` on every pick; a source replaces the array (never mutates it) when its nodes change,
 * so balancers that cache per list see the change.
 */
export interface NodeSource {
  /** The current nodes, in a stable order. */
  readonly nodes: readonly TransportNode[];
  /** Pending until the first set of nodes is known; `undefined` once it is (or never will be). */
  readonly firstSet: Promise<void> | undefined;
  /** The error of a call that finds no node. */
  noNodeError(): WeftError;
  /** A node failed to connect. */
  nodeFailed?(node: TransportNode): void;
  /** Closes every node. */
  close(): Promise<void>;
}

/** `UNAVAILABLE`/`NO_AVAILABLE_NODE`: no node can take the call. */
export function noNode(message: string): WeftError {
  return new WeftError(Code.UNAVAILABLE, message, { reason: Reason.NO_AVAILABLE_NODE });
}

/** A fixed list of nodes. */
class StaticNodes implements NodeSource {
  readonly nodes: readonly TransportNode[];
  readonly firstSet = undefined;

  constructor(nodes: readonly TransportNode[]) {
    this.nodes = Object.freeze([...nodes]);
  }

  noNodeError(): WeftError {
    return noNode("the cluster has no node");
  }

  async close(): Promise<void> {
    await Promise.all(this.nodes.map((node) => node.close()));
  }
}

export interface ClusterOptions {
  /** A call refused by servers going away is sent again at most this many times. Default 3. */
  maxRefusedRetries?: number;
  /** How the node of each call is chosen, with feedback when it asks for it. Default `roundRobin()`. */
  balancer?: Balancer;
  /** A plain chooser instead of a balancer (not both). */
  picker?: Picker;
  /**
   * Per-method overrides, keyed by the method's wire path (`/catalog.v1.Catalog/Lookup`) or its bare
   * name (`Lookup`); the path wins. Resolved once per method.
   */
  methods?: Readonly<Record<string, MethodPolicy>>;
}

/**
 * A transport over `nodes` (a static list, or a `NodeSource` whose list changes). A call goes to the node the balancer chooses; when that node has no
 * connection up, the call waits for one within its signal and deadline, and goes to the next node
 * if it cannot connect. A call refused before it started (goaway, shutdown) is sent again through the
 * balancer, at most `maxRefusedRetries` times. A balancer with `feedback` hears how each attempt went.
 */
export class Cluster implements Transport {
  readonly #source: NodeSource;
  readonly #balancer: Balancer;
  /** Per-method overrides, when any are given. */
  readonly #methods: Readonly<Record<string, MethodPolicy>> | undefined;
  /** The balancer of each method seen, resolved once from `#methods`. */
  readonly #byMethod = new WeakMap<MethodInfo, Balancer>();
  readonly #maxRetries: number;
  #closed = false;

  constructor(nodes: readonly TransportNode[] | NodeSource, options: ClusterOptions = {}) {
    if (Array.isArray(nodes) && nodes.length === 0)
      throw new ConfigError("nodes", "at least one node", nodes);
    const max = options.maxRefusedRetries ?? 3;
    if (!Number.isInteger(max) || max < 0) {
      throw new ConfigError("maxRefusedRetries", "an integer ≥ 0", options.maxRefusedRetries);
    }
    this.#source = Array.isArray(nodes) ? new StaticNodes(nodes) : (nodes as NodeSource);
    if (options.balancer !== undefined && options.picker !== undefined) {
      throw new ConfigError("picker", "absent when a balancer is given", options.picker);
    }
    const balancer =
      options.balancer ??
      (options.picker === undefined ? roundRobinBalancer() : new PickerBalancer(options.picker));
    if (typeof balancer?.pick !== "function") {
      throw new ConfigError("balancer", "an object with pick(nodes, call)", options.balancer);
    }
    this.#balancer = balancer;
    this.#methods = checkMethods(options.methods);
    this.#maxRetries = max;
  }

  /** The balancer of `method`'s calls: its override, or the cluster's. */
  #balancerOf(method: MethodInfo): Balancer {
    const methods = this.#methods;
    if (methods === undefined) return this.#balancer;
    let balancer = this.#byMethod.get(method);
    if (balancer === undefined) {
      const bare = method.path.slice(method.path.lastIndexOf("/") + 1);
      const policy = own(methods, method.path) ?? own(methods, bare) ?? own(methods, method.name);
      balancer = policy?.balancer ?? this.#balancer;
      this.#byMethod.set(method, balancer);
    }
    return balancer;
  }

  call(call: Call): Promise<CallResult> {
    // Fast path: the chosen node has a connection up and the balancer wants no feedback; no promise
    // or closure in between.
    const nodes = this.#source.nodes;
    if (!this.#closed && nodes.length !== 0) {
      const balancer = this.#methods === undefined ? this.#balancer : this.#balancerOf(call.method);
      const picked = balancer.pick(nodes, call);
      if (picked !== undefined) {
        const node = picked.node;
        if (balancer.feedback) return this.#callWaiting(call, 0, picked);
        if (node.ready) return node.call(call, this.#retry, 0);
        return this.#callWaiting(call, 0, node);
      }
    }
    return this.#callWaiting(call, 0, undefined);
  }

  /** A call refused without being started goes through the balancer again; given to every node call. */
  readonly #retry: RetryRefused = (call, attempt) => {
    if (attempt > this.#maxRetries) {
      return Promise.reject(
        new WeftError(Code.UNAVAILABLE, `refused by ${attempt} servers going away`, {
          reason: Reason.REFUSED_STREAM,
        }),
      );
    }
    return this.#callWaiting(call, attempt, undefined);
  };

  /**
   * The slow path: waits for the first node (given, or picked now) to connect, within the call's
   * signal and deadline; a node that cannot connect hands the call to the next one the balancer
   * chooses among those not tried yet and not backing off. With a feedback balancer, `first` is its
   * `Picked` and every attempt is reported to `done` once.
   */
  async #callWaiting(
    call: Call,
    attempt: number,
    first: TransportNode | Picked<TransportNode> | undefined,
  ): Promise<CallResult> {
    const balancer = this.#balancerOf(call.method);
    const feedback = balancer.feedback;
    let picked: Picked<TransportNode> | undefined;
    let node: TransportNode | undefined;
    if (first === undefined) {
      if (this.#closed) throw transportClosed();
      const source = this.#source;
      if (source.nodes.length === 0 && source.firstSet !== undefined) {
        await settleWithin(source.firstSet, call.signal, call.deadline);
      }
      if (source.nodes.length === 0) throw source.noNodeError();
      picked = balancer.pick(source.nodes, call);
      node = picked?.node;
    } else if ("done" in first) {
      picked = first;
      node = first.node;
    } else {
      node = first;
    }
    let lastError: WeftError | undefined;
    const tried: TransportNode[] = [];
    while (node !== undefined) {
      const start = feedback ? performance.now() : 0;
      try {
        if (this.#closed) throw transportClosed();
        if (!node.ready) await settleWithin(node.connect(), call.signal, call.deadline);
        if (this.#closed) throw transportClosed();
        if (!feedback || picked === undefined) return node.call(call, this.#retry, attempt);
        return this.#observed(node, picked, call, attempt);
      } catch (e) {
        if (feedback) picked?.done({ latencyMs: performance.now() - start, error: e });
        if (e instanceof WeftError && e.reason === Reason.CONNECTION_FAILED) this.#source.nodeFailed?.(node);
        // the call's own deadline or cancellation, or the transport closed: no other node will help
        if (this.#closed || call.signal.aborted || isSpent(call.deadline)) throw e;
        lastError = WeftError.from(e, Code.UNAVAILABLE);
      }
      tried.push(node);
      const rest = this.#source.nodes.filter((n) => !tried.includes(n) && !n.backingOff);
      picked = rest.length === 0 ? undefined : balancer.pick(rest, call);
      node = picked?.node;
    }
    if (this.#closed) throw transportClosed();
    throw (
      lastError ??
      new WeftError(Code.UNAVAILABLE, "every address is backing off after connection failures", {
        reason: Reason.NO_AVAILABLE_NODE,
      })
    );
  }

  /**
   * Sends `call` to `node` and reports the attempt to `picked.done` exactly once: when the node
   * refuses it (before the resend goes through the balancer again), or when it settles.
   */
  #observed(
    node: TransportNode,
    picked: Picked<TransportNode>,
    call: Call,
    attempt: number,
  ): Promise<CallResult> {
    const start = performance.now();
    let open = true;
    const report = (error: unknown): void => {
      if (!open) return;
      open = false;
      picked.done({ latencyMs: performance.now() - start, error });
    };
    const retry: RetryRefused = (resent, next) => {
      report(
        new WeftError(Code.UNAVAILABLE, "refused by a server going away", { reason: Reason.REFUSED_STREAM }),
      );
      return this.#retry(resent, next);
    };
    return node.call(call, retry, attempt).then(
      (result) => {
        report(undefined);
        return result;
      },
      (error: unknown) => {
        report(error);
        throw error;
      },
    );
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#source.close();
  }
}

function transportClosed(): WeftError {
  return new WeftError(Code.UNAVAILABLE, "transport is closed", { reason: Reason.TRANSPORT_CLOSED });
}

function own<T>(record: Readonly<Record<string, T>>, key: string): T | undefined {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}

function checkMethods(
  methods: Readonly<Record<string, MethodPolicy>> | undefined,
): Readonly<Record<string, MethodPolicy>> | undefined {
  if (methods === undefined) return undefined;
  if (typeof methods !== "object" || methods === null) {
    throw new ConfigError(
      "methods",
      'an object keyed by method path or name ("/pkg.Svc/Method", "Method")',
      methods,
    );
  }
  for (const [key, policy] of Object.entries(methods)) {
    if (typeof policy !== "object" || policy === null)
      throw new ConfigError(`methods["${key}"]`, "an object", policy);
    const balancer = policy.balancer;
    if (balancer !== undefined && typeof balancer?.pick !== "function") {
      throw new ConfigError(`methods["${key}"].balancer`, "an object with pick(nodes, call)", balancer);
    }
  }
  return Object.keys(methods).length === 0 ? undefined : methods;
}
