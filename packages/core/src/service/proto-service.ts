import type { DescMethod, DescService, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import type { GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import { protobufType } from "../codec/protobuf-codec.ts";
import { defineService, type MethodDef, type MethodKind, type ServiceDef } from "./service.ts";

/** Field number of the `(weft.v1.oneway)` method option (proto/weft/v1/options.proto). */
export const ONEWAY_OPTION_FIELD = 51001;

type KindOf<K> = K extends "unary"
  ? "unary"
  : K extends "server_streaming"
    ? "server_streaming"
    : K extends "client_streaming"
      ? "client_streaming"
      : "bidi_streaming";

/** The method map of a service built from a protoc-gen-es service descriptor. */
export type ProtoMethods<S extends GenServiceMethods> = {
  readonly [K in keyof S]: MethodDef<
    MessageShape<S[K]["input"]>,
    MessageShape<S[K]["output"]>,
    KindOf<S[K]["methodKind"]>,
    MessageInitShape<S[K]["input"]>,
    MessageInitShape<S[K]["output"]>
  >;
};

/** True when a proto method carries `option (weft.v1.oneway) = true`. */
export function isOnewayMethod(method: DescMethod): boolean {
  const unknown = method.proto.options?.$unknown;
  if (unknown === undefined) return false;
  // field 51001, varint: the last occurrence wins; the value is the first data byte after the tag
  for (let i = unknown.length - 1; i >= 0; i--) {
    const field = unknown[i]!;
    if (field.no === ONEWAY_OPTION_FIELD) return field.data[field.data.length - 1] === 1;
  }
  return false;
}

/**
 * Builds a Weft service definition from a protobuf service descriptor (as `@bufbuild/protoc-gen-es`
 * generates): protobuf codecs for every message, the proto method names on the wire
 * (`/catalog.v1.Catalog/Lookup`), lowerCamelCase method names in JavaScript (`lookup`), the
 * idempotency level, and `(weft.v1.oneway)` methods as true one-way calls. `protoc-gen-weft`
 * generates typed wrappers around this.
 */
export function protoService<S extends GenServiceMethods>(
  desc: DescService & { method: { [K in keyof S]: S[K] & DescMethod } },
): ServiceDef<ProtoMethods<S>>;
export function protoService(desc: DescService): ServiceDef;
export function protoService(desc: DescService): ServiceDef {
  const methods: Record<string, MethodDef> = {};
  for (const m of desc.methods) {
    const oneway = m.methodKind === "unary" && isOnewayMethod(m);
    const kind: MethodKind = oneway ? "oneway" : m.methodKind;
    methods[m.localName] = Object.freeze({
      kind,
      input: protobufType(m.input),
      output: protobufType(m.output),
      idempotent: m.idempotency === 1 || m.idempotency === 2,
      rpcName: m.name,
      proto: m,
    }) as MethodDef;
  }
  return defineService(desc.typeName, methods, { proto: desc });
}
