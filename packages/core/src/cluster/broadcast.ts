/*
 * Broadcast and multicast: one call sent to every node of a cluster (or of one group), answered by
 * the list of each node's outcome rather than one response.
 */
import { earlierDeadline } from "../call/deadline.ts";
import { eitherSignal, NEVER } from "../call/signal.ts";
import type { SerializerName } from "../codec/serializer.ts";
import { currentCallContext } from "../context/call-context.ts";
import type { Instance } from "../discovery/registry.ts";
import { Code } from "../errors/code.ts";
import { ConfigError, WeftError } from "../errors/weft-error.ts";
import type { UnaryCall } from "../interceptor/call.ts";
import { Metadata } from "../metadata/metadata.ts";
import type { MethodDef, MethodInfo, ServiceDef } from "../service/service.ts";
import { methodsOf } from "../service/service.ts";
import type { Transport } from "../transport/transport.ts";
import { Cluster, clusterSeam } from "./cluster.ts";
import { noNodeLeft } from "./routing.ts";

/** One node's outcome of a broadcast: its response, or its error. */
export type NodeOutcome<O> =
  | { readonly node: string; readonly instance: Instance | undefined; readonly ok: true; readonly message: O }
  | {
      readonly node: string;
      readonly instance: Instance | undefined;
      readonly ok: false;
      readonly error: WeftError;
    };

/** Options of `broadcast` and `multicast`. */
export interface BroadcastOptions {
  /** Time budget of the whole broadcast, ms (each node's call shares it). Default none, or the handler's. */
  timeoutMs?: number;
  /** Cancels every node's call. */
  signal?: AbortSignal;
  /** Request headers (propagated call-context headers are added, as for a client call). */
  headers?: Record<string, string>;
  /** Serializer; default the request type's first. */
  serializer?: SerializerName;
}

/** Options of `multicast`: the group, and broadcast's options. */
export interface MulticastOptions extends BroadcastOptions {
  /** The group whose instances get the call: those with label `label` equal to it. */
  group: string;
  /** The instance label naming the group. Default `group`. */
  label?: string;
}

type UnaryKeys<S extends ServiceDef> = {
  [K in keyof S["methods"]]: S["methods"][K] extends MethodDef<infer _I, infer _O, "unary" | "oneway">
    ? K
    : never;
}[keyof S["methods"]] &
  string;
type InputOf<M> = M extends MethodDef<infer _I, infer _O, infer _K, infer II, infer _OI> ? II : never;
type OutputOf<M> = M extends MethodDef<infer _I, infer O, "unary"> ? O : undefined;

/**
 * Sends `request` to every node of `transport` (a cluster transport: `createTcpTransport`,
 * `createMemoryTransport`, `createGrpcTransport`) after the method's routing filters, in parallel,
 * and resolves once all have answered with each node's outcome, in the cluster's node order. Never
 * rejects for a node's failure (that is its outcome); rejects with `NO_AVAILABLE_NODE` when there is
 * no node. Unary and one-way methods only. Inside a handler it inherits the deadline, cancellation
 * and propagated headers, as a client call does.
 *
 * ```ts
 * const outcomes = await broadcast(transport, Cache, "evict", { key: "sku:A-1" }, { timeoutMs: 500 });
 * for (const o of outcomes) if (!o.ok) log(o.node, o.error.code);
 * ```
 */
export function broadcast<S extends ServiceDef, K extends UnaryKeys<S>>(
  transport: Transport,
  service: S,
  method: K,
  request: InputOf<S["methods"][K]>,
  options: BroadcastOptions = {},
): Promise<NodeOutcome<OutputOf<S["methods"][K]>>[]> {
  return fanOut(transport, service, method, request, options, undefined);
}

/**
 * `broadcast` to the instances of one group only: nodes whose `instance.labels[label]` (default
 * `group`) is `options.group`. Rejects with `NO_AVAILABLE_NODE` when the group has no node.
 */
export function multicast<S extends ServiceDef, K extends UnaryKeys<S>>(
  transport: Transport,
  service: S,
  method: K,
  request: InputOf<S["methods"][K]>,
  options: MulticastOptions,
): Promise<NodeOutcome<OutputOf<S["methods"][K]>>[]> {
  const group = options?.group;
  if (typeof group !== "string" || group === "") throw new ConfigError("group", "a non-empty string", group);
  const label = options.label ?? "group";
  return fanOut(transport, service, method, request, options, { label, group });
}

async function fanOut(
  transport: Transport,
  service: ServiceDef,
  name: string,
  request: unknown,
  options: BroadcastOptions,
  group: { label: string; group: string } | undefined,
): Promise<NodeOutcome<never>[]> {
  if (!(transport instanceof Cluster)) {
    throw new ConfigError(
      "transport",
      "a cluster transport (createTcpTransport, createGrpcTransport, …)",
      transport,
    );
  }
  const info = methodsOf(service).find((m) => m.name === name);
  if (info === undefined || (info.kind !== "unary" && info.kind !== "oneway")) {
    throw new ConfigError("method", `a unary or one-way method of ${service.typeName}`, name);
  }
  const seam = clusterSeam(transport);
  const call = outgoingCall(info, request, options);
  let nodes = seam.routed(call);
  if (group !== undefined) nodes = nodes.filter((n) => n.instance?.labels[group.label] === group.group);
  if (nodes.length === 0)
    throw noNodeLeft(group === undefined ? "broadcast" : `multicast ${group.group}`, call);
  const oneway = info.kind === "oneway";
  return Promise.all(
    nodes.map((node) =>
      seam.send({ ...call }, node).then(
        (result) => ({
          node: node.address,
          instance: node.instance,
          ok: true as const,
          message: (oneway || result.stream ? undefined : result.message) as never,
        }),
        (e: unknown) => ({
          node: node.address,
          instance: node.instance,
          ok: false as const,
          error: WeftError.from(e, Code.UNKNOWN),
        }),
      ),
    ),
  );
}

/** The call a client would build: own budget capped by the handler's, both signals, propagated headers. */
function outgoingCall(info: MethodInfo, message: unknown, options: BroadcastOptions): UnaryCall {
  const ctx = currentCallContext();
  const own = options.timeoutMs === undefined ? undefined : Date.now() + options.timeoutMs;
  const headers = new Metadata(ctx?.propagate);
  if (options.headers !== undefined) for (const [k, v] of Object.entries(options.headers)) headers.set(k, v);
  return {
    method: info,
    side: "client",
    headers,
    signal: eitherSignal(options.signal ?? NEVER, ctx?.signal ?? NEVER),
    deadline: earlierDeadline(own, ctx?.deadline),
    serializer: options.serializer ?? info.input.serializers[0]!,
    peer: undefined,
    protocol: undefined,
    stream: false,
    message,
  };
}
