/*
 * Broadcast and multicast: one call sent through a client to every node of its cluster (or of one
 * group), answered by the list of each node's outcome rather than one response. Each node's call is
 * built as the client builds a call (`buildCall`) and runs through the client's interceptors.
 */
import { Cluster, clusterSeam } from "../cluster/cluster.ts";
import type { ClusterSeam } from "../cluster/modes.ts";
import { noNodeLeft } from "../cluster/routing.ts";
import type { Instance } from "../discovery/registry.ts";
import { Code } from "../errors/code.ts";
import { markFromCall } from "../errors/downstream.ts";
import { ConfigError, WeftError } from "../errors/weft-error.ts";
import { type Call, type CallResult, compose, type Interceptor } from "../interceptor/call.ts";
import { Metadata } from "../metadata/metadata.ts";
import { methodsOf } from "../service/service.ts";
import { buildCall, type CallOptions, clientRecord } from "./client.ts";

/** One node's outcome of a broadcast: its response, or its error (marked as from a call). */
export type NodeOutcome<O> =
  | { readonly node: string; readonly instance: Instance | undefined; readonly ok: true; readonly message: O }
  | {
      readonly node: string;
      readonly instance: Instance | undefined;
      readonly ok: false;
      readonly error: WeftError;
    };

/**
 * Options of `broadcast`: a client call's own options. Each node's call is built from them as a
 * client call is (the client's `timeoutMs`, `headers` and `serializer` are the defaults; inside a
 * handler its deadline, cancellation and propagated headers are inherited).
 */
export interface BroadcastOptions
  extends Pick<CallOptions, "timeoutMs" | "signal" | "headers" | "serializer"> {}

/** Options of `multicast`: the group, and broadcast's options. */
export interface MulticastOptions extends BroadcastOptions {
  /** The group whose instances get the call: those with label `label` equal to it. Required. */
  group: string;
  /** The instance label naming the group. Default `"group"`. */
  label?: string;
}

/** The names of a client's methods that take one request and answer with one message or none. */
export type BroadcastMethod<C> = {
  [K in keyof C]: C[K] extends (request: infer R, options?: CallOptions) => Promise<unknown>
    ? [R] extends [AsyncIterable<unknown>]
      ? never // client streaming
      : K
    : never;
}[keyof C] &
  string;
type RequestOf<F> = F extends (request: infer R, options?: CallOptions) => unknown ? R : never;
/** The message of a node's outcome: the method's response, `undefined` for a one-way method. */
type ResponseOf<F> = F extends (...args: never[]) => Promise<infer O>
  ? // biome-ignore lint/suspicious/noConfusingVoidType: a one-way method's client answers Promise<void>
    [O] extends [void]
    ? undefined
    : O
  : never;

/**
 * Sends `request` to every node of `client`'s transport (a cluster transport: `createTcpTransport`,
 * `createMemoryTransport`, `createGrpcTransport`) left by the method's routing filters, in parallel,
 * and resolves once all have answered with each node's outcome, in the cluster's node order. Each
 * node gets its own call, built as `client[method](request, options)` builds one, through the
 * client's interceptors. Never rejects for a node's failure (that is its outcome); rejects with
 * `NO_AVAILABLE_NODE` when there is no node. Unary and one-way methods only (a one-way outcome's
 * `message` is `undefined`). Throws `ConfigError` when `client` was not made by `createClient`, its
 * transport is not a cluster, or `method` is not one of its unary or one-way methods.
 *
 * ```ts
 * const cache = createClient(Cache, transport, { interceptors: [auth()] });
 * const outcomes = await broadcast(cache, "evict", { key: "sku:A-1" }, { timeoutMs: 500 });
 * for (const o of outcomes) if (!o.ok) log(o.node, o.error.code);
 * ```
 */
export function broadcast<C extends object, K extends BroadcastMethod<C>>(
  client: C,
  method: K,
  request: RequestOf<C[K]>,
  options?: BroadcastOptions,
): Promise<NodeOutcome<ResponseOf<C[K]>>[]> {
  return fanOut(client, method, request, options, undefined) as Promise<NodeOutcome<ResponseOf<C[K]>>[]>;
}

/**
 * `broadcast` to the instances of one group only: nodes whose `instance.labels[label]` (default
 * `"group"`) is `options.group`. Rejects with `NO_AVAILABLE_NODE` when the group has no node; throws
 * `ConfigError` for a missing or empty `group`.
 */
export function multicast<C extends object, K extends BroadcastMethod<C>>(
  client: C,
  method: K,
  request: RequestOf<C[K]>,
  options: MulticastOptions,
): Promise<NodeOutcome<ResponseOf<C[K]>>[]> {
  const group = options?.group;
  if (typeof group !== "string" || group === "") throw new ConfigError("group", "a non-empty string", group);
  const label = options.label ?? "group";
  if (typeof label !== "string" || label === "") throw new ConfigError("label", "a non-empty string", label);
  return fanOut(client, method, request, options, { label, group }) as Promise<
    NodeOutcome<ResponseOf<C[K]>>[]
  >;
}

function fanOut(
  client: object,
  name: string,
  request: unknown,
  options: BroadcastOptions | undefined,
  group: { label: string; group: string } | undefined,
): Promise<NodeOutcome<unknown>[]> {
  const record = clientRecord(client);
  if (record === undefined) throw new ConfigError("client", "a client made by createClient", client);
  const { transport, service } = record;
  if (!(transport instanceof Cluster)) {
    throw new ConfigError(
      "transport",
      "a cluster transport (createTcpTransport, createGrpcTransport, …) under the client",
      transport,
    );
  }
  const info = methodsOf(service).find((m) => m.name === name);
  if (info === undefined || (info.kind !== "unary" && info.kind !== "oneway")) {
    throw new ConfigError("method", `a unary or one-way method of ${service.typeName}`, name);
  }
  const seam = clusterSeam(transport);
  const oneway = info.kind === "oneway";
  let call: Call;
  try {
    call = buildCall(info, record.options, options, false, request);
  } catch (e) {
    return Promise.reject(markFromCall(e));
  }
  // a membership that does not know its first set yet: wait for it, within the call's deadline
  const waiting = seam.firstSet(call);
  if (waiting === undefined) return sendToAll(seam, record.interceptors, call, oneway, group);
  return waiting.then(
    () => sendToAll(seam, record.interceptors, call, oneway, group),
    (e: unknown) => Promise.reject(markFromCall(e)),
  );
}

/** Sends `call` to every routed node (of `group`, if given), each through the client's interceptors. */
function sendToAll(
  seam: ClusterSeam,
  interceptors: readonly Interceptor[],
  call: Call,
  oneway: boolean,
  group: { label: string; group: string } | undefined,
): Promise<NodeOutcome<unknown>[]> {
  try {
    let nodes = seam.routed(call);
    if (group !== undefined) nodes = nodes.filter((n) => n.instance?.labels[group.label] === group.group);
    if (nodes.length === 0)
      throw noNodeLeft(group === undefined ? "broadcast" : `multicast ${group.group}`, call);
    return Promise.all(
      nodes.map((node) => {
        const chain = compose(interceptors, (c) => seam.send(c, node));
        // a call of its own, headers included: what an interceptor writes for one node stays there
        const own = { ...call, headers: new Metadata(call.headers) };
        return chain(own).then(
          (result: CallResult): NodeOutcome<unknown> => ({
            node: node.address,
            instance: node.instance,
            ok: true,
            message: oneway || result.stream ? undefined : result.message,
          }),
          (e: unknown): NodeOutcome<unknown> => ({
            node: node.address,
            instance: node.instance,
            ok: false,
            error: markFromCall(WeftError.from(e, Code.UNKNOWN)),
          }),
        );
      }),
    );
  } catch (e) {
    return Promise.reject(markFromCall(e));
  }
}
