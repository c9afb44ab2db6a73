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
import { type ClusterMode, type ClusterSeam, checkMode } from "./modes.ts";
import type { NodeHealth } from "./node-health.ts";
import type { MethodPolicy } from "./policy.ts";
import { checkRouting, type RouteFilter, route } from "./routing.ts";

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
  /** Filters narrowing the nodes of every call before the balancer, in order. Default none. */
  routing?: readonly RouteFilter[];
  /**
   * How every call runs beyond one attempt (`failover()`, `failsafe()`, …). Default: one attempt,
   * moving to another node only when the request never left (as `failfast()`).
   */
  mode?: ClusterMode;
  /**
   * Per-method overrides, keyed by wire path (`/catalog.v1.Catalog/Lookup`) or bare method name
   * (`Lookup`); the path wins. Resolved once per method.
   */
  methods?: Readonly<Record<string, MethodPolicy>>;
  /**
   * Which nodes may take calls now (per-node circuit breakers, `instanceBreakers()` of
   * `@weft/resilience`): while it restricts, the balancer picks only among the nodes it allows, and a
   * call it refuses on every node fails at once with its error; it hears how every attempt went.
   * Default none (every call takes the fast path).
   */
  nodeHealth?: NodeHealth;
}

/**
 * The cluster options a transport takes beside its target and connection options (everything but
 * the plain `picker`): retries of refused calls, the balancer, routing filters, the mode, per-method
 * overrides.
 */
export type ClusterPolicies = Omit<ClusterOptions, "picker">;

const POLICY_KEYS = [
  "maxRefusedRetries",
  "balancer",
  "routing",
  "mode",
  "methods",
  "nodeHealth",
] as const satisfies readonly (keyof ClusterPolicies)[];

/** The cluster options among a transport's options (those given, none other). */
export function clusterOptionsOf(options: ClusterPolicies): ClusterOptions {
  const out: Record<string, unknown> = {};
  for (const key of POLICY_KEYS) if (options[key] !== undefined) out[key] = options[key];
  return out as ClusterOptions;
}

/**
 * What the calls of one method run with: its balancer, routing and mode, or why its mode cannot run
 * it. `direct` when it has neither routing nor mode: its calls take the fast path.
 */
interface Governance {
  readonly balancer: Balancer;
  readonly direct: boolean;
  readonly routing: readonly RouteFilter[] | undefined;
  readonly mode: ClusterMode | undefined;
  readonly misfit: WeftError | undefined;
}

let seamOf: (cluster: Cluster) => ClusterSeam;

/** The internals of `cluster` that broadcast uses (its routing, sending to one node). */
export function clusterSeam(cluster: Cluster): ClusterSeam {
  return seamOf(cluster);
}

/**
 * A transport over `nodes` (a static list, or a `NodeSource` whose list changes, such as a membership
 * following a registry). A call goes through its method's routing filters, then to the node the
 * balancer chooses; when that node has no connection up, the call waits for one within its signal and
 * deadline, and goes to the next node if it cannot connect. Before a membership knows its first set,
 * calls wait for it within their deadline. A call refused before it started (goaway, shutdown) is
 * sent again through the balancer, at most `maxRefusedRetries` times. A balancer with `feedback`
 * hears how each attempt went. A cluster mode runs the calls of the methods it is given to.
 */
export class Cluster implements Transport {
  readonly #source: NodeSource;
  readonly #balancer: Balancer;
  readonly #maxRetries: number;
  /** Routing, mode and per-method options; `undefined` when none is set (the plain path only). */
  readonly #options: ClusterOptions | undefined;
  /** The governance of each method seen, resolved on its first call. */
  readonly #governance = new WeakMap<MethodInfo, Governance>();
  /** The governance of every method when no routing, mode or per-method option is set. */
  readonly #plain: Governance;
  /** Per-node health; `undefined` when none is given (the fast path stays as it is). */
  readonly #health: NodeHealth | undefined;
  /** The node list the node health last saw, to tell it which nodes left. */
  #healthNodes: readonly TransportNode[] | undefined = undefined;
  #closed = false;

  constructor(nodes: readonly TransportNode[] | NodeSource, options: ClusterOptions = {}) {
    if (Array.isArray(nodes) && nodes.length === 0)
      throw new ConfigError("nodes", "at least one node", nodes);
    let checked: CheckedOptions;
    try {
      checked = checkOptions(options);
    } catch (error) {
      // a membership already watches its registry: stop it, or a bad option would leak it
      if (!Array.isArray(nodes)) (nodes as NodeSource).close().then(undefined, () => {});
      throw error;
    }
    this.#source = Array.isArray(nodes) ? new StaticNodes(nodes) : (nodes as NodeSource);
    const { balancer, maxRetries, health, governed } = checked;
    this.#balancer = balancer;
    this.#plain = { ...DIRECT, balancer };
    this.#maxRetries = maxRetries;
    this.#health = health;
    this.#options = governed ? options : undefined;
  }

  call(call: Call): Promise<CallResult> {
    let balancer = this.#balancer;
    if (this.#options !== undefined) {
      const governance = this.#governanceOf(call.method);
      if (!governance.direct) return this.#governed(call, governance);
      balancer = governance.balancer;
    }
    if (this.#health !== undefined) return this.#callWaiting(call, 0, undefined, undefined, []);
    // Fast path: the chosen node has a connection up and the balancer wants no feedback; no promise
    // or closure in between.
    const nodes = this.#source.nodes;
    if (!this.#closed && nodes.length !== 0) {
      const picked = balancer.pick(nodes, call);
      if (picked !== undefined) {
        const node = picked.node;
        if (balancer.feedback) {
          // a connected node: straight to the observed send, no slow-path frame in between
          // sent at once: timed from the pick when the balancer read the clock for it
          if (node.ready)
            return this.#observed(node, picked, call, 0, 0, picked.pickedAt ?? performance.now());
          return this.#callWaiting(call, 0, picked, nodes, []);
        }
        if (node.ready) return node.call(call, this.#retry, 0);
        return this.#callWaiting(call, 0, node, nodes, []);
      }
    }
    return this.#callWaiting(call, 0, undefined, undefined, []);
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
    return this.#callWaiting(call, attempt, undefined, undefined, []);
  };

  /** The balancer, routing and mode of `method`'s calls, resolved on its first call. */
  #governanceOf(method: MethodInfo): Governance {
    const options = this.#options;
    if (options === undefined) return this.#plain;
    let governance = this.#governance.get(method);
    if (governance === undefined) {
      governance = resolveGovernance(options, method, this.#balancer);
      this.#governance.set(method, governance);
    }
    return governance;
  }

  /**
   * The nodes `call` may go to now, after its method's routing filters. Throws the source's error
   * when it has no node (none discovered, the registry unreachable), or a filter's when it leaves none.
   */
  #routed(call: Call): readonly TransportNode[] {
    // closed (maybe while the call waited for the first set): the transport's error, not "no node"
    if (this.#closed) throw transportClosed();
    const nodes = this.#source.nodes;
    if (nodes.length === 0) throw this.#source.noNodeError();
    const routing = this.#options === undefined ? undefined : this.#governanceOf(call.method).routing;
    return routing === undefined ? nodes : route(routing, nodes, call);
  }

  /**
   * While the source has no node but expects its first set: that wait, within the call's signal and
   * deadline. `undefined` otherwise (a static list, a known set), so callers go on without a turn.
   */
  #firstSet(call: Call): Promise<unknown> | undefined {
    const first = this.#source.firstSet;
    if (first === undefined || this.#source.nodes.length !== 0) return undefined;
    return settleWithin(first, call.signal, call.deadline);
  }

  /** A call with routing filters or a mode: routed, then run by its mode or as one attempt. */
  async #governed(call: Call, governance: Governance): Promise<CallResult> {
    if (governance.misfit !== undefined) throw governance.misfit;
    if (this.#closed) throw transportClosed();
    const waiting = this.#firstSet(call);
    if (waiting !== undefined) await waiting;
    const nodes = this.#routed(call);
    if (governance.mode === undefined) return this.#callWaiting(call, 0, undefined, nodes, []);
    return governance.mode.run(this.#seam, call, nodes);
  }

  static {
    seamOf = (cluster) => cluster.#seam;
  }

  /** What cluster modes and broadcast use of this cluster. */
  readonly #seam: ClusterSeam = {
    routed: (call) => this.#routed(call),
    attempt: (call, nodes, tried) => this.#callWaiting(call, 0, undefined, nodes, tried),
    send: (call, node) => this.#send(call, node),
    firstSet: (call) => this.#firstSet(call),
  };

  /** Sends `call` to `node` only, once it is connected; a refusal is this node's outcome. */
  async #send(call: Call, node: TransportNode): Promise<CallResult> {
    if (this.#closed) throw transportClosed();
    if (!node.ready) await settleWithin(node.connect(), call.signal, call.deadline);
    if (this.#closed) throw transportClosed();
    return node.call(call, undefined, 0);
  }

  /**
   * The slow path: waits for the first node (given, or picked now among `nodes` not in `tried`; with
   * `nodes` undefined, among the routed nodes once the source knows its first set) to connect, within
   * the call's signal and deadline; a node that cannot connect hands the call to the next one the
   * balancer chooses among those not tried yet and not backing off. Every node picked goes into
   * `tried` (a cluster mode's next attempt avoids it). With a feedback balancer, `first` is its
   * `Picked` and every attempt is reported to `done` once.
   */
  async #callWaiting(
    call: Call,
    attempt: number,
    first: TransportNode | Picked<TransportNode> | undefined,
    candidates: readonly TransportNode[] | undefined,
    tried: TransportNode[],
  ): Promise<CallResult> {
    const balancer = this.#governanceOf(call.method).balancer;
    const feedback = balancer.feedback;
    const health = this.#health;
    const observe = feedback || health !== undefined;
    let nodes = candidates;
    let picked: Picked<TransportNode> | undefined;
    let node: TransportNode | undefined;
    if (first === undefined) {
      if (nodes === undefined) {
        if (this.#closed) throw transportClosed();
        const waiting = this.#firstSet(call);
        if (waiting !== undefined) await waiting;
        nodes = this.#routed(call);
      }
      const pool = this.#candidates(nodes, tried);
      picked = pool.length === 0 ? undefined : balancer.pick(pool, call);
      node = picked?.node;
    } else if ("done" in first) {
      picked = first;
      node = first.node;
    } else {
      node = first;
    }
    let lastError: WeftError | undefined;
    while (node !== undefined) {
      tried.push(node);
      const permit = health === undefined ? 0 : health.started(node);
      const start = observe ? performance.now() : 0;
      try {
        if (this.#closed) throw transportClosed();
        if (!node.ready) await settleWithin(node.connect(), call.signal, call.deadline);
        if (this.#closed) throw transportClosed();
        if (!observe) return node.call(call, this.#retry, attempt);
        return this.#observed(node, feedback ? picked : undefined, call, attempt, permit, performance.now());
      } catch (e) {
        if (observe) this.#report(node, feedback ? picked : undefined, permit, performance.now() - start, e);
        if (e instanceof WeftError && e.reason === Reason.CONNECTION_FAILED) this.#source.nodeFailed?.(node);
        // the call's own deadline or cancellation, or the transport closed: no other node will help
        if (this.#closed || call.signal.aborted || isSpent(call.deadline)) throw e;
        lastError = WeftError.from(e, Code.UNAVAILABLE);
      }
      const rest = this.#candidates(nodes ?? this.#source.nodes, tried);
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
   * The nodes a call may go to among `nodes`: all of them on its first pick, else those not tried yet
   * and not backing off; then, while the node health restricts, those it allows. Throws its error
   * when it refuses every node of a first pick (the call fails fast, nothing was sent).
   */
  #candidates(nodes: readonly TransportNode[], tried: readonly TransportNode[]): readonly TransportNode[] {
    const pool = tried.length === 0 ? nodes : nodes.filter((n) => !tried.includes(n) && !n.backingOff);
    const health = this.#health;
    if (health === undefined) return pool;
    if (this.#source.nodes !== this.#healthNodes) this.#nodesChanged(health);
    if (!health.restricting || pool.length === 0) return pool;
    const allowed = pool.filter((n) => health.allows(n));
    if (allowed.length === 0 && tried.length === 0) throw health.refusedError();
    return allowed;
  }

  /** The source's node list changed: tells the node health which nodes left. */
  #nodesChanged(health: NodeHealth): void {
    const before = this.#healthNodes;
    const now = this.#source.nodes;
    this.#healthNodes = now;
    if (before === undefined || health.nodesRemoved === undefined) return;
    const present = new Set(now);
    const removed = before.filter((node) => !present.has(node));
    if (removed.length !== 0) health.nodesRemoved(removed);
  }

  /**
   * Reports one attempt on `node` to the balancer's `picked` (when it wants feedback) and the node
   * health, with the permit its `started` gave the attempt.
   */
  #report(
    node: TransportNode,
    picked: Picked<TransportNode> | undefined,
    permit: number,
    latencyMs: number,
    error: unknown,
  ): void {
    const info = { latencyMs, error };
    picked?.done(info);
    this.#health?.done(node, info, permit);
  }

  /**
   * Sends `call` to `node` and reports the attempt, timed from `start` (`performance.now()`), to
   * `picked.done` when given and to the node health, exactly once: when the node refuses it (before
   * the resend goes through the balancer again), or when it settles.
   */
  #observed(
    node: TransportNode,
    picked: Picked<TransportNode> | undefined,
    call: Call,
    attempt: number,
    permit: number,
    start: number,
  ): Promise<CallResult> {
    const observed = new ObservedAttempt(this.#reportTo, this.#retry, node, picked, permit, start);
    return node.call(call, observed.refused, attempt).then(observed.succeeded, observed.failed);
  }

  /** `#report`, for the attempts `#observed` times. */
  readonly #reportTo: ReportAttempt = (node, picked, permit, latencyMs, error) =>
    this.#report(node, picked, permit, latencyMs, error);

  async close(): Promise<void> {
    this.#closed = true;
    await this.#source.close();
  }
}

type ReportAttempt = (
  node: TransportNode,
  picked: Picked<TransportNode> | undefined,
  permit: number,
  latencyMs: number,
  error: unknown,
) => void;

/**
 * One attempt sent by `#observed`, timed from its start and reported exactly once; its handlers are
 * what the node's call settles through (no async wrapper per attempt).
 */
class ObservedAttempt {
  readonly #report: ReportAttempt;
  readonly #resend: RetryRefused;
  readonly #node: TransportNode;
  readonly #picked: Picked<TransportNode> | undefined;
  /** What the node health's `started` returned for the attempt (0 without one). */
  readonly #permit: number;
  readonly #start: number;
  #open = true;

  constructor(
    report: ReportAttempt,
    resend: RetryRefused,
    node: TransportNode,
    picked: Picked<TransportNode> | undefined,
    permit: number,
    start: number,
  ) {
    this.#report = report;
    this.#resend = resend;
    this.#node = node;
    this.#picked = picked;
    this.#permit = permit;
    this.#start = start;
  }

  /** The node refused the call before starting it: this attempt ends, then the call is resent. */
  readonly refused: RetryRefused = (call, attempt) => {
    this.#end(
      new WeftError(Code.UNAVAILABLE, "refused by a server going away", { reason: Reason.REFUSED_STREAM }),
    );
    return this.#resend(call, attempt);
  };

  readonly succeeded = (result: CallResult): CallResult => {
    this.#end(undefined);
    return result;
  };

  readonly failed = (error: unknown): never => {
    this.#end(error);
    throw error;
  };

  /** The attempt ended (`error` undefined: it succeeded), or was refused before the resend. */
  #end(error: unknown): void {
    if (!this.#open) return;
    this.#open = false;
    this.#report(this.#node, this.#picked, this.#permit, performance.now() - this.#start, error);
  }
}

/** A cluster's options, checked. */
interface CheckedOptions {
  readonly balancer: Balancer;
  readonly maxRetries: number;
  readonly health: NodeHealth | undefined;
  /** Some routing, mode or per-method option is set. */
  readonly governed: boolean;
}

/** Checks a cluster's options; throws `ConfigError` naming the first bad one. */
function checkOptions(options: ClusterOptions): CheckedOptions {
  if (options === null || typeof options !== "object") throw new ConfigError("options", "an object", options);
  const maxRetries = options.maxRefusedRetries ?? 3;
  if (!Number.isInteger(maxRetries) || maxRetries < 0) {
    throw new ConfigError("maxRefusedRetries", "an integer ≥ 0", options.maxRefusedRetries);
  }
  if (options.balancer !== undefined && options.picker !== undefined) {
    throw new ConfigError("picker", "absent when a balancer is given", options.picker);
  }
  if (options.picker !== undefined && typeof options.picker?.pick !== "function") {
    throw new ConfigError("picker", "an object with pick(nodes, call)", options.picker);
  }
  const balancer =
    options.balancer ??
    (options.picker === undefined ? roundRobinBalancer() : new PickerBalancer(options.picker));
  if (typeof balancer?.pick !== "function") {
    throw new ConfigError("balancer", "an object with pick(nodes, call)", options.balancer);
  }
  const health = checkHealth(options.nodeHealth);
  const { routing, mode, methods } = options;
  if (routing !== undefined) checkRouting("routing", routing);
  if (mode !== undefined) checkMode("mode", mode);
  const governed = routing !== undefined || mode !== undefined || checkMethods(methods) !== undefined;
  return { balancer, maxRetries, health, governed };
}

/** A method with neither routing nor mode: its calls take the fast path with `balancer`. */
const DIRECT = { direct: true, routing: undefined, mode: undefined, misfit: undefined } as const;

/**
 * The balancer, routing and mode of `method`: its own (`methods[path]`, else `methods[name]`) over
 * the cluster's. A cluster-wide mode that does not fit the method leaves it out; the method's own
 * misfitting mode makes its calls fail with FAILED_PRECONDITION.
 */
function resolveGovernance(options: ClusterOptions, method: MethodInfo, fallback: Balancer): Governance {
  const methods = options.methods;
  const bare = method.path.slice(method.path.lastIndexOf("/") + 1);
  const own =
    methods === undefined
      ? undefined
      : (ownKey(methods, method.path) ?? ownKey(methods, bare) ?? ownKey(methods, method.name));
  const balancer = own?.balancer ?? fallback;
  const routing = own?.routing ?? options.routing;
  let mode = own?.mode ?? options.mode;
  let misfit: WeftError | undefined;
  if (mode !== undefined && !mode.fits(method)) {
    if (own?.mode !== undefined) {
      misfit = new WeftError(
        Code.FAILED_PRECONDITION,
        `${method.path} (${method.kind}${method.idempotent ? ", idempotent" : ""}) cannot run in ${mode.name} mode`,
      );
    }
    mode = undefined;
  }
  if (misfit === undefined && mode === undefined && (routing === undefined || routing.length === 0))
    return { ...DIRECT, balancer };
  return { balancer, direct: false, routing: routing?.length === 0 ? undefined : routing, mode, misfit };
}

function ownKey<T>(record: Readonly<Record<string, T>>, key: string): T | undefined {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}

/** Checks `methods`; `undefined` when absent or empty. */
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
      throw new ConfigError(`methods.${key}`, "an object", policy);
    const balancer = policy.balancer;
    if (balancer !== undefined && typeof balancer?.pick !== "function") {
      throw new ConfigError(`methods.${key}.balancer`, "an object with pick(nodes, call)", balancer);
    }
    if (policy.routing !== undefined) checkRouting(`methods.${key}.routing`, policy.routing);
    if (policy.mode !== undefined) checkMode(`methods.${key}.mode`, policy.mode);
  }
  return Object.keys(methods).length === 0 ? undefined : methods;
}

/** Checks the `nodeHealth` option. */
function checkHealth(health: NodeHealth | undefined): NodeHealth | undefined {
  if (health === undefined) return undefined;
  const h = health as Partial<NodeHealth> | null;
  if (
    typeof h !== "object" ||
    h === null ||
    typeof h.allows !== "function" ||
    typeof h.started !== "function" ||
    typeof h.done !== "function" ||
    typeof h.refusedError !== "function"
  ) {
    throw new ConfigError("nodeHealth", "an object with allows, started, done and refusedError", health);
  }
  return health;
}

function transportClosed(): WeftError {
  return new WeftError(Code.UNAVAILABLE, "transport is closed", { reason: Reason.TRANSPORT_CLOSED });
}
