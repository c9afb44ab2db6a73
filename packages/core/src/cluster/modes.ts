/*
 * Cluster modes: what a cluster does around the attempts of one call (fail over to another node,
 * fail fast, swallow the error, resend in the background, fork to several nodes). Broadcast and
 * multicast answer with one outcome per node, so they are functions of their own, called through a
 * client (`client/broadcast.ts`).
 * docs/routing.md describes each mode.
 */
import { type BackoffOptions, backoffDelay } from "../call/backoff.ts";
import { armDeadline, type DeadlineTimer, isSpent } from "../call/deadline.ts";
import { eitherSignal, NEVER } from "../call/signal.ts";
import { Code } from "../errors/code.ts";
import { Reason } from "../errors/reason.ts";
import { ConfigError, WeftError } from "../errors/weft-error.ts";
import type { Call, CallResult, UnaryCall } from "../interceptor/call.ts";
import { Metadata } from "../metadata/metadata.ts";
import type { MethodInfo } from "../service/service.ts";
import type { TransportNode } from "../transport/node.ts";

/** What a mode may do with its cluster: a `ClusterMode`, built in or custom, receives it in `run`. */
export interface ClusterSeam {
  /**
   * The nodes `call` may go to now, after its method's routing filters (rejects with
   * `NO_AVAILABLE_NODE` when a failing filter leaves none).
   */
  routed(call: Call): readonly TransportNode[];
  /**
   * One attempt of `call` over `nodes`: the balancer picks among those not in `tried` (pushing each
   * node it picks there), the call waits for a connection and moves to the next pick when it cannot
   * connect; a call a server refused before starting it is resent through the cluster.
   */
  attempt(call: Call, nodes: readonly TransportNode[], tried: TransportNode[]): Promise<CallResult>;
  /** Sends `call` to `node` only (waiting for it to connect within the call's signal and deadline). */
  send(call: Call, node: TransportNode): Promise<CallResult>;
  /**
   * While the cluster's membership does not know its first set of nodes yet: that wait, within the
   * call's signal and deadline; `undefined` otherwise (a static list, a known set).
   */
  firstSet(call: Call): Promise<unknown> | undefined;
}

/**
 * How a cluster runs the calls of a method, beyond picking one node: `failover()`, `failfast()`,
 * `failsafe()`, `failback()`, `forking()`. Set on the cluster (`mode`) or per method
 * (`methods[name].mode`). A mode that does not fit a method (`fits` false: a streaming method for
 * forking, a non-idempotent one for forking) set for the whole cluster leaves that method's calls
 * to the default path; set for that very method, its calls fail with `FAILED_PRECONDITION`.
 */
export interface ClusterMode {
  /** `failover`, `failfast`, … */
  readonly name: string;
  /** Whether calls of `method` can run in this mode. */
  fits(method: MethodInfo): boolean;
  /** Runs `call` over `nodes` (already routed). */
  run(cluster: ClusterSeam, call: Call, nodes: readonly TransportNode[]): Promise<CallResult>;
}

const anyKind = (): boolean => true;
/** Methods answering with one message (a `UnaryResult`). */
const unaryResult = (m: MethodInfo): boolean =>
  m.kind === "unary" || m.kind === "oneway" || m.kind === "client_streaming";

function checkCount(option: string, value: unknown, min: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min) {
    throw new ConfigError(option, `an integer ≥ ${min}`, value);
  }
  return value;
}

function checkCodes(value: unknown): ReadonlySet<number> {
  if (!Array.isArray(value) || !value.every((c) => Number.isInteger(c) && c > 0 && c <= 16)) {
    throw new ConfigError("codes", "an array of error codes (Code.UNAVAILABLE, …)", value);
  }
  return new Set(value as number[]);
}

/** True when the caller itself gave up: its signal aborted or its deadline passed. */
function callerGaveUp(call: Call): boolean {
  return call.signal.aborted || isSpent(call.deadline);
}

/** Whether any of `nodes` is not in `tried`. */
function untried(nodes: readonly TransportNode[], tried: readonly TransportNode[]): boolean {
  for (const n of nodes) if (!tried.includes(n)) return true;
  return false;
}

/** A unary result carrying `message`, what failsafe and failback answer with. */
function answer(message: unknown): CallResult {
  return { stream: false, headers: new Metadata(), message, trailers: new Metadata() };
}

/** Options of `failover`. */
export interface FailoverOptions {
  /** Attempts on other nodes after the first one fails. An integer ≥ 0; default 2. */
  retries?: number;
  /** The codes that send the call to another node. Default `[Code.UNAVAILABLE]` (the node, not the request). */
  codes?: readonly Code[];
}

/**
 * Failover: a call that fails with one of `codes` is sent again to a **different** node, at most
 * `retries` times and never past the caller's deadline or cancellation. Only for calls that can be
 * sent twice: idempotent methods (`idempotent: true`) whose request is one message (unary, one-way,
 * server-streaming; a streaming response only before it started, since the call settles with its
 * headers). Other calls fail over only when the request provably never left (a node that cannot
 * connect, a server refusing the call before starting it), as every cluster does.
 */
export function failover(options: FailoverOptions = {}): ClusterMode {
  const retries = checkCount("retries", options.retries ?? 2, 0);
  const codes = checkCodes(options.codes ?? [Code.UNAVAILABLE]);
  const resendable = (m: MethodInfo): boolean =>
    m.idempotent && (m.kind === "unary" || m.kind === "oneway" || m.kind === "server_streaming");
  return {
    name: "failover",
    fits: anyKind,
    async run(cluster, call, nodes) {
      const tried: TransportNode[] = [];
      for (let attempt = 0; ; attempt++) {
        try {
          return await cluster.attempt(call, nodes, tried);
        } catch (e) {
          const again =
            attempt < retries &&
            resendable(call.method) &&
            e instanceof WeftError &&
            codes.has(e.code) &&
            !callerGaveUp(call) &&
            untried(nodes, tried);
          if (!again) throw e;
        }
      }
    },
  };
}

/**
 * Failfast: one attempt, no failover after the request was sent (a node that cannot connect and a
 * refused call still move to another node, since the request never left). The default of a cluster.
 */
export function failfast(): ClusterMode {
  return { name: "failfast", fits: anyKind, run: (cluster, call, nodes) => cluster.attempt(call, nodes, []) };
}

/** Options of `failsafe`. */
export interface FailsafeOptions {
  /** The response the caller gets instead of an error. Default `undefined` (an empty result). */
  response?: unknown;
  /** The codes swallowed. Default every code, except the caller's own cancellation or deadline. */
  codes?: readonly Code[];
  /** Told of every swallowed error (to log it). */
  onError?: (error: WeftError, call: Call) => void;
}

/**
 * Failsafe: a failed call answers with `response` instead of an error, for calls whose outcome does
 * not matter (audit, metrics). Swallows every error (or those with `codes`), except when the caller
 * cancelled or its deadline passed: the caller gave up and sees why. For methods answering with one
 * message (unary, one-way, client-streaming).
 */
export function failsafe(options: FailsafeOptions = {}): ClusterMode {
  const codes = options.codes === undefined ? undefined : checkCodes(options.codes);
  const onError = options.onError;
  if (onError !== undefined && typeof onError !== "function")
    throw new ConfigError("onError", "a function", onError);
  const response = options.response;
  return {
    name: "failsafe",
    fits: unaryResult,
    run(cluster, call, nodes) {
      return cluster.attempt(call, nodes, []).catch((e: unknown) => {
        const error = WeftError.from(e, Code.UNKNOWN);
        if (callerGaveUp(call) || (codes !== undefined && !codes.has(error.code))) throw e;
        onError?.(error, call);
        return answer(response);
      });
    },
  };
}

/** Options of `failback`. */
export interface FailbackOptions {
  /** The response the caller gets when the first attempt fails. Default `undefined`. */
  response?: unknown;
  /** Most calls waiting for a background resend; the oldest is dropped for a new one. Default 100. */
  queueSize?: number;
  /** Background resends of one call before it is abandoned. Default 10. */
  maxRetries?: number;
  /** Backoff between background resends: doubling from `initialDelayMs` (default 1,000) to `maxDelayMs` (default 60,000), ±20% jitter. */
  backoff?: Partial<BackoffOptions>;
  /** Time budget of each background resend, ms. Default 10,000. */
  timeoutMs?: number;
  /** Jitter source, a number in [0, 1). Default `Math.random`. */
  random?: () => number;
}

/** What a failback mode has done so far, for metrics and tests. */
export interface FailbackStats {
  /** Calls waiting for a background resend now. */
  readonly queued: number;
  /** Calls a background resend delivered. */
  readonly delivered: number;
  /** Calls dropped from a full queue (the oldest makes room for the newest). */
  readonly dropped: number;
  /** Calls given up after `maxRetries` resends, or because the transport closed. */
  readonly abandoned: number;
}

/** A failback mode: a `ClusterMode` with its queue's counters. */
export interface FailbackMode extends ClusterMode {
  stats(): FailbackStats;
}

interface Pending {
  readonly cluster: ClusterSeam;
  readonly call: UnaryCall;
  failures: number;
  timer: DeadlineTimer | undefined;
}

/**
 * Failback: a call whose first attempt fails answers at once with `response` (default `undefined`),
 * and is resent in the background until it is delivered: backoff from 1 s doubling to 60 s, at
 * most `maxRetries` times, each resend with its own `timeoutMs` budget and without the caller's
 * signal. At most `queueSize` calls wait; a new one drops the oldest (counted in `stats().dropped`).
 * Only for unary and one-way methods whose result the caller does not need; the caller's own
 * cancellation or deadline is not resent. Timers do not keep the process alive.
 */
export function failback(options: FailbackOptions = {}): FailbackMode {
  const queueSize = checkCount("queueSize", options.queueSize ?? 100, 1);
  const maxRetries = checkCount("maxRetries", options.maxRetries ?? 10, 1);
  const backoff: BackoffOptions = {
    initialDelayMs: checkCount("backoff.initialDelayMs", options.backoff?.initialDelayMs ?? 1000, 1),
    maxDelayMs: checkCount("backoff.maxDelayMs", options.backoff?.maxDelayMs ?? 60_000, 1),
  };
  const timeoutMs = checkCount("timeoutMs", options.timeoutMs ?? 10_000, 1);
  const random = options.random ?? Math.random;
  const response = options.response;
  const queue: Pending[] = [];
  let delivered = 0;
  let dropped = 0;
  let abandoned = 0;

  const leave = (p: Pending): void => {
    const i = queue.indexOf(p);
    if (i >= 0) queue.splice(i, 1);
  };
  const schedule = (p: Pending): void => {
    p.timer = armDeadline(Date.now() + backoffDelay(p.failures, backoff, random), resend, p);
  };
  const resend = (p: Pending): void => {
    p.timer = undefined;
    const call: UnaryCall = { ...p.call, deadline: Date.now() + timeoutMs };
    let attempt: Promise<CallResult>;
    try {
      attempt = p.cluster.attempt(call, p.cluster.routed(call), []);
    } catch (e) {
      attempt = Promise.reject(e);
    }
    attempt.then(
      () => {
        leave(p);
        delivered++;
      },
      (e: unknown) => {
        if (!queue.includes(p)) return; // dropped meanwhile
        p.failures++;
        if (p.failures > maxRetries || (e instanceof WeftError && e.reason === Reason.TRANSPORT_CLOSED)) {
          leave(p);
          abandoned++;
          return;
        }
        schedule(p);
      },
    );
  };

  return {
    name: "failback",
    fits: (m) => m.kind === "unary" || m.kind === "oneway",
    run(cluster, call, nodes) {
      return cluster.attempt(call, nodes, []).catch((e: unknown) => {
        if (callerGaveUp(call) || call.stream) throw e;
        if (queue.length >= queueSize) {
          const oldest = queue.shift()!;
          oldest.timer?.cancel();
          dropped++;
        }
        const p: Pending = { cluster, call: { ...call, signal: NEVER }, failures: 1, timer: undefined };
        queue.push(p);
        schedule(p);
        return answer(response);
      });
    },
    stats: () => ({ queued: queue.length, delivered, dropped, abandoned }),
  };
}

/** Options of `forking`. */
export interface ForkingOptions {
  /** Nodes a call goes to at once (fewer when fewer are available). An integer ≥ 2; default 2. */
  count?: number;
}

/**
 * Forking: the call goes to `count` different nodes in parallel; the first success answers, and the
 * other attempts are cancelled through their signal (their servers see the cancellation). Fails
 * with the first error when every attempt fails. For idempotent unary methods only (the request
 * runs on several servers).
 */
export function forking(options: ForkingOptions = {}): ClusterMode {
  const count = checkCount("count", options.count ?? 2, 2);
  return {
    name: "forking",
    fits: (m) => m.kind === "unary" && m.idempotent,
    run(cluster, call, nodes) {
      const tried: TransportNode[] = [];
      const forks: AbortController[] = [];
      const attempts: Promise<CallResult>[] = [];
      for (let i = 0; i < count && (i === 0 || untried(nodes, tried)); i++) {
        const controller = new AbortController();
        const signal = eitherSignal(call.signal, controller.signal);
        forks.push(controller);
        attempts.push(cluster.attempt({ ...call, signal }, nodes, tried));
      }
      return new Promise<CallResult>((resolve, reject) => {
        let left = attempts.length;
        let firstError: unknown;
        let won = false;
        attempts.forEach((attempt, i) => {
          attempt.then(
            (result) => {
              if (won) return;
              won = true;
              const lost = new WeftError(Code.CANCELLED, "another forked call answered first", {
                reason: Reason.CANCELLED,
              });
              forks.forEach((fork, j) => {
                if (j !== i) fork.abort(lost);
              });
              resolve(result);
            },
            (e: unknown) => {
              firstError ??= e;
              if (--left === 0 && !won) reject(firstError);
            },
          );
        });
      });
    },
  };
}

/** Checks a `mode` option. */
export function checkMode(option: string, value: unknown): ClusterMode {
  const mode = value as Partial<ClusterMode> | null;
  if (typeof mode?.run !== "function" || typeof mode.fits !== "function" || typeof mode.name !== "string") {
    throw new ConfigError(option, "a cluster mode (failover(), failfast(), …)", value);
  }
  return mode as ClusterMode;
}
