/*
 * The cluster: a `Transport` over single-node transports of one protocol. It chooses the node of
 * each call (a `Picker`: today round robin over a static list) and resends, elsewhere, a call a
 * server refused before starting it. A balancer, routing filters, cluster modes and per-instance
 * breakers belong here, never in a protocol's transport.
 */
import type { RetryRefused } from "../call/client-call.ts";
import { isSpent } from "../call/deadline.ts";
import { settleWithin } from "../call/signal.ts";
import { Code } from "../errors/code.ts";
import { Reason } from "../errors/reason.ts";
import { ConfigError, WeftError } from "../errors/weft-error.ts";
import type { Call, CallResult } from "../interceptor/call.ts";
import type { TransportNode } from "../transport/node.ts";
import type { Transport } from "../transport/transport.ts";

/**
 * Chooses the node of a call among `nodes` (the candidates, in a stable order), or `undefined` when
 * none should take it now. The seam a balancer fills.
 */
export interface Picker<N extends TransportNode = TransportNode> {
  pick(nodes: readonly N[], call: Call): N | undefined;
}

/**
 * Round robin over the nodes, skipping those in reconnect backoff (a lone node is still picked: its
 * own error says why it cannot take the call and when it tries again).
 */
export function roundRobin(): Picker {
  return new RoundRobin();
}

class RoundRobin implements Picker {
  #next = 0;

  pick<N extends TransportNode>(nodes: readonly N[], _call: Call): N | undefined {
    const n = nodes.length;
    for (let i = 0; i < n; i++) {
      const index = (this.#next + i) % n;
      const node = nodes[index]!;
      if (node.backingOff && n > 1) continue;
      this.#next = (index + 1) % n;
      return node;
    }
    return undefined;
  }
}

export interface ClusterOptions {
  /** A call refused by servers going away is sent again at most this many times. Default 3. */
  maxRefusedRetries?: number;
  /** How the node of each call is chosen. Default `roundRobin()`. */
  picker?: Picker;
}

/**
 * A transport over `nodes`. A call goes to the node the picker chooses; when that node has no
 * connection up, the call waits for one within its signal and deadline, and goes to the next node
 * if it cannot connect. A call refused before it started (goaway, shutdown) is sent again through the
 * picker, at most `maxRefusedRetries` times.
 */
export class Cluster implements Transport {
  readonly #nodes: readonly TransportNode[];
  readonly #picker: Picker;
  readonly #maxRetries: number;
  #closed = false;

  constructor(nodes: readonly TransportNode[], options: ClusterOptions = {}) {
    if (nodes.length === 0) throw new ConfigError("nodes", "at least one node", nodes);
    const max = options.maxRefusedRetries ?? 3;
    if (!Number.isInteger(max) || max < 0) {
      throw new ConfigError("maxRefusedRetries", "an integer ≥ 0", options.maxRefusedRetries);
    }
    this.#nodes = nodes;
    this.#picker = options.picker ?? roundRobin();
    this.#maxRetries = max;
  }

  call(call: Call): Promise<CallResult> {
    // Fast path: the chosen node has a connection up; no promise or closure in between.
    if (!this.#closed) {
      const node = this.#picker.pick(this.#nodes, call);
      if (node?.ready === true) return node.call(call, this.#retry, 0);
      if (node !== undefined) return this.#callWaiting(call, 0, node);
    }
    return this.#callWaiting(call, 0, undefined);
  }

  /** A call refused without being started goes through the picker again; given to every node call. */
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
   * The slow path: waits for `first` (or the picked node) to connect, within the call's signal and
   * deadline; a node that cannot connect hands the call to the next one the picker chooses among
   * those not tried yet and not backing off.
   */
  async #callWaiting(call: Call, attempt: number, first: TransportNode | undefined): Promise<CallResult> {
    if (this.#closed) throw transportClosed();
    let node = first ?? this.#picker.pick(this.#nodes, call);
    let lastError: WeftError | undefined;
    const tried: TransportNode[] = [];
    while (node !== undefined) {
      try {
        if (!node.ready) await settleWithin(node.connect(), call.signal, call.deadline);
        if (this.#closed) throw transportClosed();
        return node.call(call, this.#retry, attempt);
      } catch (e) {
        // the call's own deadline or cancellation, or the transport closed: no other node will help
        if (this.#closed || call.signal.aborted || isSpent(call.deadline)) throw e;
        lastError = WeftError.from(e, Code.UNAVAILABLE);
      }
      tried.push(node);
      const rest = this.#nodes.filter((n) => !tried.includes(n) && !n.backingOff);
      node = rest.length === 0 ? undefined : this.#picker.pick(rest, call);
    }
    throw (
      lastError ??
      new WeftError(Code.UNAVAILABLE, "every address is backing off after connection failures", {
        reason: Reason.NO_AVAILABLE_NODE,
      })
    );
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all(this.#nodes.map((node) => node.close()));
  }
}

function transportClosed(): WeftError {
  return new WeftError(Code.UNAVAILABLE, "transport is closed", { reason: Reason.TRANSPORT_CLOSED });
}
