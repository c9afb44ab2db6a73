import {
  createRegistry,
  type DescFile,
  type MessageInitShape,
  type Registry,
  toBinary,
} from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, protoService, type Server } from "@weft/core";
import {
  ServerReflection as ReflectionV1,
  type ServerReflectionRequest,
  type ServerReflectionResponseSchema,
} from "./gen/grpc/reflection/v1/reflection_pb.ts";
import { ServerReflection as ReflectionV1Alpha } from "./gen/grpc/reflection/v1alpha/reflection_pb.ts";

export interface ReflectionOptions {
  /** More files to describe, besides those of the registered services (e.g. extension definitions). */
  files?: readonly DescFile[];
}

/** The Weft service definitions of `grpc.reflection.v1.ServerReflection` and its `v1alpha` twin. */
export const ReflectionService = protoService(ReflectionV1);
export const ReflectionV1AlphaService = protoService(ReflectionV1Alpha);

/**
 * Registers gRPC server reflection, `grpc.reflection.v1.ServerReflection` and the older
 * `grpc.reflection.v1alpha.ServerReflection` that many tools still ask for, so grpcurl, Postman,
 * Evans and friends can list and call the services. It describes every registered service that has
 * a protobuf descriptor (services from `.proto` via `protoService`), with the files they depend on;
 * services defined in code have no descriptor and are not listed.
 */
export function addReflection(server: Server, options: ReflectionOptions = {}): void {
  const index = new ReflectionIndex(server, options.files ?? []);
  server.register(ReflectionService, { serverReflectionInfo: (requests) => answer(index, requests) });
  // v1alpha has the same messages under another package: same fields, same numbers, same code.
  server.register(ReflectionV1AlphaService, {
    serverReflectionInfo: (requests) => answer(index, requests as never) as never,
  });
}

/** The protobuf files reachable from the server's services, rebuilt when services were added. */
class ReflectionIndex {
  readonly #server: Server;
  readonly #extra: readonly DescFile[];
  #size = -1;
  #registry: Registry | undefined;
  #files = new Map<string, DescFile>();
  #services: string[] = [];

  constructor(server: Server, extra: readonly DescFile[]) {
    this.#server = server;
    this.#extra = extra;
  }

  get registry(): Registry {
    this.#refresh();
    return this.#registry!;
  }

  file(name: string): DescFile | undefined {
    this.#refresh();
    return this.#files.get(name);
  }

  get services(): string[] {
    this.#refresh();
    return this.#services;
  }

  #refresh(): void {
    const methods = this.#server.methods;
    if (this.#registry !== undefined && this.#size === methods.size) return;
    const files = new Map<string, DescFile>();
    const services = new Set<string>();
    const add = (file: DescFile) => {
      // DescFile.name drops ".proto"; reflection speaks in file paths, as protoc names them
      if (files.has(file.proto.name)) return;
      files.set(file.proto.name, file);
      for (const dep of file.dependencies) add(dep);
    };
    for (const info of methods.values()) {
      const desc = info.service.proto;
      if (desc === undefined) continue;
      services.add(desc.typeName);
      add(desc.file);
    }
    for (const f of this.#extra) add(f);
    this.#registry = createRegistry(...files.values());
    this.#files = files;
    this.#services = [...services].sort();
    this.#size = methods.size;
  }
}

type Response = MessageInitShape<typeof ServerReflectionResponseSchema>;
type Answer = Exclude<Response["messageResponse"], undefined>;

async function* answer(
  index: ReflectionIndex,
  requests: AsyncIterable<ServerReflectionRequest>,
): AsyncGenerator<Response> {
  /** Files already sent on this stream: dependencies go once, as grpc-go does. */
  const sent = new Set<string>();
  for await (const req of requests) {
    let messageResponse: Answer;
    try {
      messageResponse = respond(index, req, sent);
    } catch (e) {
      const error = e as { code?: number; message: string };
      messageResponse = {
        case: "errorResponse",
        value: { errorCode: error.code ?? Code.INTERNAL, errorMessage: error.message },
      };
    }
    yield { validHost: req.host, originalRequest: req, messageResponse };
  }
}

class NotFound extends Error {
  readonly code = Code.NOT_FOUND;
}

function respond(index: ReflectionIndex, req: ServerReflectionRequest, sent: Set<string>): Answer {
  const registry = index.registry;
  const r = req.messageRequest;
  switch (r.case) {
    case "listServices":
      return {
        case: "listServicesResponse",
        value: { service: index.services.map((name) => ({ name })) },
      };
    case "fileByFilename": {
      const file = index.file(r.value);
      if (file === undefined) throw new NotFound(`file not found: ${r.value}`);
      return filesResponse(file, sent);
    }
    case "fileContainingSymbol": {
      const file = fileOfSymbol(registry, r.value);
      if (file === undefined) throw new NotFound(`symbol not found: ${r.value}`);
      return filesResponse(file, sent);
    }
    case "fileContainingExtension": {
      const { containingType, extensionNumber } = r.value;
      for (const t of registry) {
        if (
          t.kind === "extension" &&
          t.extendee.typeName === containingType &&
          t.number === extensionNumber
        ) {
          return filesResponse(t.file, sent);
        }
      }
      throw new NotFound(`extension ${extensionNumber} of ${containingType} not found`);
    }
    case "allExtensionNumbersOfType": {
      if (registry.getMessage(r.value) === undefined) throw new NotFound(`type not found: ${r.value}`);
      const numbers: number[] = [];
      for (const t of registry)
        if (t.kind === "extension" && t.extendee.typeName === r.value) numbers.push(t.number);
      return {
        case: "allExtensionNumbersResponse",
        value: { baseTypeName: r.value, extensionNumber: numbers.sort((a, b) => a - b) },
      };
    }
    default:
      throw Object.assign(new Error("unsupported reflection request"), { code: Code.UNIMPLEMENTED });
  }
}

/** The file declaring a symbol: a type, a service, or a member of one (method, field, enum value). */
function fileOfSymbol(registry: Registry, symbol: string): DescFile | undefined {
  const direct = registry.get(symbol);
  if (direct !== undefined) return direct.file;
  const dot = symbol.lastIndexOf(".");
  if (dot < 0) return undefined;
  const parent = registry.get(symbol.slice(0, dot));
  const member = symbol.slice(dot + 1);
  if (parent === undefined) return undefined;
  switch (parent.kind) {
    case "service":
      return parent.methods.some((m) => m.name === member) ? parent.file : undefined;
    case "message":
      return parent.fields.some((f) => f.name === member) || parent.oneofs.some((o) => o.name === member)
        ? parent.file
        : undefined;
    case "enum":
      return parent.values.some((v) => v.name === member) ? parent.file : undefined;
    default:
      return undefined;
  }
}

/** The file and the files it depends on, transitively, minus those already sent on this stream. */
function filesResponse(file: DescFile, sent: Set<string>): Answer {
  const out: Uint8Array[] = [];
  const visit = (f: DescFile, requested: boolean) => {
    if (!requested && sent.has(f.proto.name)) return;
    sent.add(f.proto.name);
    out.push(toBinary(FileDescriptorProtoSchema, f.proto));
    for (const dep of f.dependencies) if (!sent.has(dep.proto.name)) visit(dep, false);
  };
  visit(file, true);
  return { case: "fileDescriptorResponse", value: { fileDescriptorProto: out } };
}
