import { earlierDeadline } from "../call/deadline.ts";
import { eitherSignal, NEVER } from "../call/signal.ts";
import type { SerializerName } from "../codec/serializer.ts";
import { currentCallContext } from "../context/call-context.ts";
import { Code } from "../errors/code.ts";
import { markFromCall } from "../errors/downstream.ts";
import { Reason } from "../errors/reason.ts";
import { ConfigError, WeftError } from "../errors/weft-error.ts";
import {
  type Call,
  type CallHandler,
  type CallResult,
  compose,
  type Interceptor,
  type StreamResult,
  singleMessage,
  type UnaryResult,
} from "../interceptor/call.ts";
import { Metadata } from "../metadata/metadata.ts";
import { type MethodDef, type MethodInfo, methodsOf, type ServiceDef } from "../service/service.ts";
import type { Transport } from "../transport/transport.ts";

/** Per-call options. */
export interface CallOptions {
  /** Cancels the call: the server's handler sees its signal abort. */
  signal?: AbortSignal;
  /** Time budget for this call. Calls made inside a handler never exceed the handler's remaining budget. */
  timeoutMs?: number;
  /** Request headers. */
  headers?: Metadata | Record<string, string>;
  /** Serializer for this call's messages; default: the client's, else the message type's first. */
  serializer?: SerializerName;
  /** Receives the response headers. */
  onHeader?: (headers: Metadata) => void;
  /**
   * Receives the trailers when the call ends, with an error too: then they are the error's `metadata`,
   * what the server sent with its status (or, for an error of this side such as the deadline, what
   * that error carries).
   */
  onTrailer?: (trailers: Metadata) => void;
}

/** The typed method of a client for each method kind. */
export type ClientMethod<M> =
  M extends MethodDef<infer _I, infer O, "unary", infer II, infer _OI>
    ? (request: II, options?: CallOptions) => Promise<O>
    : M extends MethodDef<infer _I, infer O, "server_streaming", infer II, infer _OI>
      ? (request: II, options?: CallOptions) => AsyncIterable<O>
      : M extends MethodDef<infer _I, infer O, "client_streaming", infer II, infer _OI>
        ? (requests: AsyncIterable<II>, options?: CallOptions) => Promise<O>
        : M extends MethodDef<infer _I, infer O, "bidi_streaming", infer II, infer _OI>
          ? (requests: AsyncIterable<II>, options?: CallOptions) => AsyncIterable<O>
          : M extends MethodDef<infer _I, infer _O, "oneway", infer II, infer _OI>
            ? (request: II, options?: CallOptions) => Promise<void>
            : never;

/** A typed client of service `S`. */
export type Client<S extends ServiceDef> = { [K in keyof S["methods"]]: ClientMethod<S["methods"][K]> };

/** Options of `createClient`; `broadcast` and `multicast` through the client use them too. */
export interface ClientOptions {
  /** Client interceptors, outermost first. Default none. */
  interceptors?: readonly Interceptor[];
  /** Default time budget of every call, ms, unless the call sets its own. Default none. */
  timeoutMs?: number;
  /** Default serializer. Default the request type's first. */
  serializer?: SerializerName;
  /** Headers sent with every call. Default none. */
  headers?: Record<string, string>;
}

/**
 * Creates a typed client of `service` over `transport`.
 *
 * ```ts
 * const catalog = createClient(Catalog, createTcpTransport({ address: "127.0.0.1:4000" }));
 * const item = await catalog.lookup({ sku: "A-1" }, { timeoutMs: 200 });
 * for await (const price of catalog.prices({ sku: "A-1" })) console.log(price);
 * ```
 *
 * Inside a server handler, calls inherit the handler's remaining deadline, its cancellation, and
 * its propagated headers (trace context, `weft-ctx-*`) with no extra code.
 */
export function createClient<S extends ServiceDef>(
  service: S,
  transport: Transport,
  options: ClientOptions = {},
): Client<S> {
  if (transport === null || typeof transport !== "object" || typeof transport.call !== "function") {
    throw new ConfigError("transport", "a Transport (e.g. createTcpTransport(...))", transport);
  }
  if (options.timeoutMs !== undefined && !(options.timeoutMs > 0)) {
    throw new ConfigError("timeoutMs", "a positive number of milliseconds", options.timeoutMs);
  }
  const settled: ClientOptions = { ...options };
  const interceptors = options.interceptors ?? [];
  const chain = compose(interceptors, (call) => transport.call(call));
  const client: Record<string, unknown> = {};
  for (const info of methodsOf(service)) {
    client[info.name] = makeMethod(info, chain, settled);
  }
  records.set(client, { service, transport, interceptors, options: settled });
  return client as Client<S>;
}

/** What `createClient` was given, kept for the functions that call through a client (broadcast). */
export interface ClientRecord {
  readonly service: ServiceDef;
  readonly transport: Transport;
  /** The client's interceptors, outermost first. */
  readonly interceptors: readonly Interceptor[];
  /** A copy of the client's options, taken when it was created. */
  readonly options: ClientOptions;
}

/** The record of every client `createClient` made; nothing about it shows on the client object. */
const records = new WeakMap<object, ClientRecord>();

/** What `createClient` was given for `client`; `undefined` for anything `createClient` did not make. */
export function clientRecord(client: unknown): ClientRecord | undefined {
  return typeof client === "object" && client !== null ? records.get(client) : undefined;
}

/**
 * Builds the call a client sends for `info`: deadline (the own budget, per call or the client's,
 * capped by the inherited one), signal (own and inherited), headers (propagated, client-wide, per
 * call, in that order), serializer (per call, the client's, else the request type's first; throws
 * `UNSUPPORTED_SERIALIZER` when the method's types lack it). Every call object has the same shape.
 */
export function buildCall(
  info: MethodInfo,
  clientOptions: ClientOptions,
  callOptions: CallOptions | undefined,
  stream: boolean,
  payload: unknown,
): Call {
  const ctx = currentCallContext();
  let deadline: number | undefined;
  const timeoutMs = callOptions?.timeoutMs ?? clientOptions.timeoutMs;
  // an infinite budget is no deadline (it would otherwise cross the wire as ":timeout: Infinity")
  if (timeoutMs !== undefined && timeoutMs !== Number.POSITIVE_INFINITY) deadline = Date.now() + timeoutMs;
  let signal = callOptions?.signal ?? NEVER;
  const headers = new Metadata();
  if (ctx !== undefined) {
    deadline = earlierDeadline(deadline, ctx.deadline);
    signal = eitherSignal(signal, ctx.signal);
    headers.merge(ctx.propagate);
  }
  const clientHeaders = clientOptions.headers;
  if (clientHeaders !== undefined)
    for (const k of Object.keys(clientHeaders)) headers.set(k, clientHeaders[k]!);
  const h = callOptions?.headers;
  if (h !== undefined) {
    if (h instanceof Metadata) headers.merge(h);
    else for (const k of Object.keys(h)) headers.set(k, h[k]!);
  }
  const serializer = callOptions?.serializer ?? clientOptions.serializer ?? info.input.serializers[0]!;
  const input = info.input.serializers;
  const output = info.output.serializers;
  // the common case first: both message types' first serializer
  if (
    !(serializer === input[0] && serializer === output[0]) &&
    !(input.includes(serializer) && output.includes(serializer))
  ) {
    throw new WeftError(Code.INVALID_ARGUMENT, `${info.path} cannot use serializer "${serializer}"`, {
      reason: Reason.UNSUPPORTED_SERIALIZER,
    });
  }
  return stream
    ? {
        method: info,
        side: "client",
        headers,
        signal,
        deadline,
        serializer,
        peer: undefined,
        protocol: undefined,
        bytes: undefined,
        stream: true,
        messages: payload as AsyncIterable<unknown>,
      }
    : {
        method: info,
        side: "client",
        headers,
        signal,
        deadline,
        serializer,
        peer: undefined,
        protocol: undefined,
        bytes: undefined,
        stream: false,
        message: payload,
      };
}

function makeMethod(info: MethodInfo, chain: CallHandler, options: ClientOptions): unknown {
  switch (info.kind) {
    case "unary":
    case "oneway":
    case "client_streaming": {
      // one response message: a unary result, whether the request is one message or a stream
      const extract = info.kind === "oneway" ? () => undefined : unaryMessage;
      const streamed = info.kind === "client_streaming";
      return (request: unknown, callOptions?: CallOptions): Promise<unknown> => {
        let pending: Promise<CallResult>;
        try {
          pending = chain(buildCall(info, options, callOptions, streamed, request));
        } catch (e) {
          return Promise.reject(markFromCall(e));
        }
        if (callOptions?.onHeader === undefined && callOptions?.onTrailer === undefined)
          return pending.then(extract, rethrowFromCall);
        return pending.then(
          (result) => {
            callOptions.onHeader?.(result.headers);
            callOptions.onTrailer?.(result.trailers);
            return extract(result);
          },
          (error: unknown) => {
            callOptions.onTrailer?.(trailersOf(error));
            throw markFromCall(error);
          },
        );
      };
    }
    case "server_streaming":
    case "bidi_streaming":
      return (input: unknown, callOptions?: CallOptions): AsyncIterable<unknown> => {
        const messages =
          info.kind === "server_streaming" ? singleMessage(input) : (input as AsyncIterable<unknown>);
        return {
          [Symbol.asyncIterator]: () =>
            streamResponse(chain, buildCall(info, options, callOptions, true, messages), callOptions),
        };
      };
  }
}

function unaryMessage(result: CallResult): unknown {
  return (result as UnaryResult).message;
}

async function* streamResponse(
  chain: CallHandler,
  call: Call,
  callOptions: CallOptions | undefined,
): AsyncGenerator<unknown> {
  const onTrailer = callOptions?.onTrailer;
  let result: StreamResult;
  try {
    result = (await chain(call)) as StreamResult;
  } catch (e) {
    onTrailer?.(trailersOf(e));
    throw markFromCall(e);
  }
  callOptions?.onHeader?.(result.headers);
  try {
    yield* result.messages;
  } catch (e) {
    onTrailer?.(trailersOf(e));
    throw markFromCall(e);
  }
  onTrailer?.(result.trailers);
}

/** Every error a client call rejects with is marked as coming from a call (see `markFromCall`). */
function rethrowFromCall(error: unknown): never {
  throw markFromCall(error);
}

/** The trailers of a call that failed: its error's metadata (a `WeftError`'s; none for anything else). */
function trailersOf(error: unknown): Metadata {
  return error instanceof WeftError ? error.metadata : new Metadata();
}
