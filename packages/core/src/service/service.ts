import type { MessageCodec } from "../codec/message-codec.ts";

/** The five call shapes. `oneway` is a true one-way call: the server sends nothing back. */
export type MethodKind = "unary" | "server_streaming" | "client_streaming" | "bidi_streaming" | "oneway";

/** One method of a service: its kind and the codecs of its input and output messages. */
export interface MethodDef<I = unknown, O = unknown, K extends MethodKind = MethodKind> {
  readonly kind: K;
  readonly input: MessageCodec<I>;
  readonly output: MessageCodec<O>;
  /** Safe to retry or hedge: calling twice has the effect of calling once. */
  readonly idempotent?: boolean;
}

// biome-ignore lint/suspicious/noExplicitAny: method maps are heterogeneous by design
export type AnyMethodDef = MethodDef<any, any, MethodKind>;
export type MethodMap = { readonly [name: string]: AnyMethodDef };

/** A service: a fully-qualified name (e.g. `catalog.v1.Catalog`) and its methods. */
export interface ServiceDef<M extends MethodMap = MethodMap> {
  readonly typeName: string;
  readonly methods: M;
}

/** A method resolved against its service, as interceptors and transports see it. */
export interface MethodInfo<I = unknown, O = unknown> {
  readonly service: ServiceDef;
  /** Method name as declared, e.g. `lookup`. */
  readonly name: string;
  /** `/<service>/<method>`: what the wire carries. */
  readonly path: string;
  readonly kind: MethodKind;
  readonly input: MessageCodec<I>;
  readonly output: MessageCodec<O>;
  readonly idempotent: boolean;
}

/**
 * Declares a service in code. The `.proto` code generator produces the same objects.
 *
 * ```ts
 * const Catalog = defineService("catalog.v1.Catalog", {
 *   lookup: unary(messageType<LookupRequest>(), messageType<Item>()),
 *   prices: serverStreaming(messageType<PriceQuery>(), messageType<Price>()),
 *   audit: oneway(messageType<AuditEvent>()),
 * });
 * ```
 */
export function defineService<const M extends MethodMap>(typeName: string, methods: M): ServiceDef<M> {
  if (typeof typeName !== "string" || !/^[A-Za-z_][\w.]*$/.test(typeName)) {
    throw new TypeError(`invalid service name ${JSON.stringify(typeName)}: expected a dotted identifier`);
  }
  for (const name of Object.keys(methods)) {
    if (!/^[A-Za-z_]\w*$/.test(name))
      throw new TypeError(`invalid method name ${JSON.stringify(name)} in ${typeName}`);
  }
  return Object.freeze({ typeName, methods: Object.freeze({ ...methods }) });
}

export function unary<I, O>(
  input: MessageCodec<I>,
  output: MessageCodec<O>,
  options?: { idempotent?: boolean },
) {
  return method("unary", input, output, options);
}
export function serverStreaming<I, O>(input: MessageCodec<I>, output: MessageCodec<O>) {
  return method("server_streaming", input, output);
}
export function clientStreaming<I, O>(input: MessageCodec<I>, output: MessageCodec<O>) {
  return method("client_streaming", input, output);
}
export function bidiStreaming<I, O>(input: MessageCodec<I>, output: MessageCodec<O>) {
  return method("bidi_streaming", input, output);
}
/** A true one-way method: no response, no status. Its output type is `void`. */
export function oneway<I>(input: MessageCodec<I>): MethodDef<I, void, "oneway"> {
  return method("oneway", input, voidCodec);
}

function method<I, O, K extends MethodKind>(
  kind: K,
  input: MessageCodec<I>,
  output: MessageCodec<O>,
  options?: { idempotent?: boolean },
): MethodDef<I, O, K> {
  return Object.freeze({ kind, input, output, idempotent: options?.idempotent ?? false });
}

const voidCodec: MessageCodec<void> = {
  serializers: ["raw", "protobuf", "json", "msgpack"],
  encode: () => new Uint8Array(0),
  decode: () => undefined,
};

/** Resolves every method of a service into `MethodInfo`, keyed by wire path. */
export function methodsOf(service: ServiceDef): MethodInfo[] {
  return Object.entries(service.methods).map(([name, def]) => ({
    service,
    name,
    path: `/${service.typeName}/${name}`,
    kind: def.kind,
    input: def.input,
    output: def.output,
    idempotent: def.idempotent ?? false,
  }));
}
