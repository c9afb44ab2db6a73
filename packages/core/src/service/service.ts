import type { DescMethod, DescService } from "@bufbuild/protobuf";
import type { MessageCodec } from "../codec/message-codec.ts";

/** The five call shapes. `oneway` is a true one-way call: the server sends nothing back. */
export type MethodKind = "unary" | "server_streaming" | "client_streaming" | "bidi_streaming" | "oneway";

/** One method of a service: its kind and the codecs of its input and output messages. */
export interface MethodDef<
  I = unknown,
  O = unknown,
  K extends MethodKind = MethodKind,
  IInit = I,
  OInit = O,
> {
  readonly kind: K;
  readonly input: MessageCodec<I, IInit>;
  readonly output: MessageCodec<O, OInit>;
  /** Safe to retry or hedge: calling twice has the effect of calling once. */
  readonly idempotent?: boolean;
  /**
   * Name on the wire when it differs from the property name (proto methods: `Lookup` for `lookup`).
   * Without it the property name is the wire name, verbatim; either way case matters.
   */
  readonly rpcName?: string;
  /** The protobuf descriptor, for services generated from `.proto`. */
  readonly proto?: DescMethod;
}

/** Options of a method declaration. */
export interface MethodOptions {
  idempotent?: boolean;
  rpcName?: string;
  proto?: DescMethod;
}

// biome-ignore lint/suspicious/noExplicitAny: method maps are heterogeneous by design
export type AnyMethodDef = MethodDef<any, any, MethodKind, any, any>;
export type MethodMap = { readonly [name: string]: AnyMethodDef };

/** A service: a fully-qualified name (e.g. `catalog.v1.Catalog`) and its methods. */
export interface ServiceDef<M extends MethodMap = MethodMap> {
  readonly typeName: string;
  readonly methods: M;
  /** The protobuf descriptor, for services generated from `.proto` (used by gRPC reflection, REST, Connect). */
  readonly proto?: DescService;
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
  readonly proto: DescMethod | undefined;
}

/**
 * Declares a service in code. The `.proto` code generator produces the same objects.
 *
 * Wire names: each method is called at `/<typeName>/<name>`, where `name` is the method's key **used
 * verbatim**, or its `rpcName` when it sets one. Servers compare paths byte for byte, so case matters
 * (docs/protocol.md §6): the key `lookup` below is `/catalog.v1.Catalog/lookup`. Services generated
 * from `.proto` use the proto's method names as written, by convention PascalCase
 * (`/catalog.v1.Catalog/Lookup`), with lowerCamelCase keys in JavaScript; a code-first service that
 * must answer such calls (from gRPC tools, say) gives each method the proto's name as `rpcName`.
 *
 * ```ts
 * const Catalog = defineService("catalog.v1.Catalog", {
 *   lookup: unary(messageType<LookupRequest>(), messageType<Item>()),
 *   prices: serverStreaming(messageType<PriceQuery>(), messageType<Price>()),
 *   audit: oneway(messageType<AuditEvent>()),
 * });
 * ```
 */
export function defineService<const M extends MethodMap>(
  typeName: string,
  methods: M,
  options: { proto?: DescService } = {},
): ServiceDef<M> {
  if (typeof typeName !== "string" || !/^[A-Za-z_][\w.]*$/.test(typeName)) {
    throw new TypeError(`invalid service name ${JSON.stringify(typeName)}: expected a dotted identifier`);
  }
  for (const name of Object.keys(methods)) {
    if (!/^[A-Za-z_]\w*$/.test(name))
      throw new TypeError(`invalid method name ${JSON.stringify(name)} in ${typeName}`);
  }
  const def: { typeName: string; methods: M; proto?: DescService } = {
    typeName,
    methods: Object.freeze({ ...methods }),
  };
  if (options.proto !== undefined) def.proto = options.proto;
  return Object.freeze(def);
}

export function unary<I, O>(input: MessageCodec<I>, output: MessageCodec<O>, options?: MethodOptions) {
  return method("unary", input, output, options);
}
export function serverStreaming<I, O>(
  input: MessageCodec<I>,
  output: MessageCodec<O>,
  options?: MethodOptions,
) {
  return method("server_streaming", input, output, options);
}
export function clientStreaming<I, O>(
  input: MessageCodec<I>,
  output: MessageCodec<O>,
  options?: MethodOptions,
) {
  return method("client_streaming", input, output, options);
}
export function bidiStreaming<I, O>(
  input: MessageCodec<I>,
  output: MessageCodec<O>,
  options?: MethodOptions,
) {
  return method("bidi_streaming", input, output, options);
}
/** A true one-way method: no response, no status. Its output type is `void`. */
export function oneway<I>(input: MessageCodec<I>, options?: MethodOptions): MethodDef<I, void, "oneway"> {
  return method("oneway", input, voidCodec, options);
}

function method<I, O, K extends MethodKind>(
  kind: K,
  input: MessageCodec<I>,
  output: MessageCodec<O>,
  options?: MethodOptions,
): MethodDef<I, O, K> {
  const def: { -readonly [P in keyof MethodDef<I, O, K>]: MethodDef<I, O, K>[P] } = {
    kind,
    input,
    output,
    idempotent: options?.idempotent ?? false,
  };
  if (options?.rpcName !== undefined) def.rpcName = options.rpcName;
  if (options?.proto !== undefined) def.proto = options.proto;
  return Object.freeze(def);
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
    path: `/${service.typeName}/${def.rpcName ?? name}`,
    kind: def.kind,
    input: def.input,
    output: def.output,
    idempotent: def.idempotent ?? false,
    proto: def.proto,
  }));
}
