import type { DescFile, DescMethod, DescService } from "@bufbuild/protobuf";
import type { GeneratedFile, Schema } from "@bufbuild/protoplugin";
import { isOnewayMethod } from "@weft/core";

/** Where the generated code imports Weft from. */
const CORE = "@weft/core";
/** Response type a `(weft.v1.oneway)` method must declare. */
const EMPTY = "google.protobuf.Empty";

/** Names generated for one service `Foo`; none collides with protoc-gen-es's exports (`Foo`, `FooSchema`…). */
export function namesOf(service: DescService): {
  methods: string;
  service: string;
  client: string;
  handlers: string;
  createClient: string;
} {
  const n = service.name;
  return {
    methods: `${n}Methods`,
    service: `${n}Service`,
    client: `${n}Client`,
    handlers: `${n}Handlers`,
    createClient: `create${n}Client`,
  };
}

/** A method's Weft kind: the proto kind, or `oneway` for a unary method marked `(weft.v1.oneway)`. */
export type WeftKind = "unary" | "server_streaming" | "client_streaming" | "bidi_streaming" | "oneway";

/**
 * Reads a method's Weft kind and checks the `(weft.v1.oneway)` rules: a one-way method is unary and
 * returns `google.protobuf.Empty`. Returns the problem as text, naming the method, when it breaks them.
 */
export function weftKindOf(method: DescMethod): WeftKind | { error: string } {
  if (!isOnewayMethod(method)) return method.methodKind;
  const where = `rpc ${method.parent.typeName}.${method.name} (${method.parent.file.proto.name})`;
  if (method.methodKind !== "unary") {
    return {
      error: `${where} is marked (weft.v1.oneway) but is ${method.methodKind.replace("_", " ")}: a one-way method must be unary (no "stream" on either side)`,
    };
  }
  if (method.output.typeName !== EMPTY) {
    return {
      error: `${where} is marked (weft.v1.oneway) but returns ${method.output.typeName}: a one-way method must return ${EMPTY}, since nothing is sent back`,
    };
  }
  return "oneway";
}

/** Generates `<name>_weft.ts` for every requested file that declares services. */
export function generateTs(schema: Schema): void {
  const problems: string[] = [];
  for (const file of schema.files) {
    for (const service of file.services) {
      for (const method of service.methods) {
        const kind = weftKindOf(method);
        if (typeof kind === "object") problems.push(kind.error);
      }
    }
  }
  if (problems.length > 0) throw new Error(problems.sort().join("\n"));
  for (const file of schema.files) {
    if (file.services.length > 0) generateFile(schema, file);
  }
}

function generateFile(schema: Schema, file: DescFile): void {
  const f = schema.generateFile(`${file.name}_weft.ts`);
  f.preamble(file);
  for (const service of file.services) generateService(f, service);
}

function generateService(f: GeneratedFile, service: DescService): void {
  const n = namesOf(service);
  const MethodDef = f.import("MethodDef", CORE, true);
  const ServiceDef = f.import("ServiceDef", CORE, true);
  const MessageInitShape = f.import("MessageInitShape", "@bufbuild/protobuf", true);
  const initOf = (message: DescMethod["input"]) => [
    MessageInitShape,
    "<typeof ",
    f.importSchema(message, true),
    ">",
  ];

  f.print(
    f.jsDoc(
      `The methods of ${service.typeName}, as Weft types them.\n\n@generated from ${service.toString()}`,
    ),
  );
  f.print`${f.export("type", n.methods)} = {`;
  for (const m of service.methods) {
    const kind = weftKindOf(m) as WeftKind;
    f.print(f.jsDoc(m, "  "));
    if (kind === "oneway") {
      f.print`  readonly ${m.localName}: ${MethodDef}<${f.importShape(m.input)}, void, "oneway", ${initOf(m.input)}>;`;
    } else {
      f.print`  readonly ${m.localName}: ${MethodDef}<`;
      f.print`    ${f.importShape(m.input)},`;
      f.print`    ${f.importShape(m.output)},`;
      f.print`    ${f.string(kind)},`;
      f.print`    ${initOf(m.input)},`;
      f.print`    ${initOf(m.output)}`;
      f.print`  >;`;
    }
  }
  f.print`};`;
  f.print();
  f.print(f.jsDoc(service));
  f.print`${f.export("const", n.service)}: ${ServiceDef}<${n.methods}> =`;
  f.print`  // protoService builds the definition (protobuf codecs, wire names, idempotency, one-way methods);`;
  f.print`  // its static type can't see (weft.v1.oneway), so the exact method map is declared above.`;
  f.print`  ${f.import("protoService", CORE)}(${f.importSchema(service)}) as ${ServiceDef} as ${ServiceDef}<${n.methods}>;`;
  f.print();
  f.print(f.jsDoc(`A typed client of ${service.typeName}: one method per rpc.`));
  f.print`${f.export("type", n.client)} = ${f.import("Client", CORE, true)}<typeof ${n.service}>;`;
  f.print();
  f.print(
    f.jsDoc(
      `The server side of ${service.typeName}: one handler per rpc, for \`server.register(${n.service}, handlers)\`.`,
    ),
  );
  f.print`${f.export("type", n.handlers)} = ${f.import("ServiceImpl", CORE, true)}<typeof ${n.service}>;`;
  f.print();
  f.print(f.jsDoc(`Creates a typed client of ${service.typeName} over \`transport\`.`));
  const Transport = f.import("Transport", CORE, true);
  const ClientOptions = f.import("ClientOptions", CORE, true);
  f.print`${f.export("function", n.createClient)}(transport: ${Transport}, options?: ${ClientOptions}): ${n.client} {`;
  f.print`  return ${f.import("createClient", CORE)}(${n.service}, transport, options);`;
  f.print`}`;
  f.print();
}
