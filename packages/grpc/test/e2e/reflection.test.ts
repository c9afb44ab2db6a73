import { create, createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import {
  type FileDescriptorProto,
  FileDescriptorProtoSchema,
  FileDescriptorSetSchema,
} from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import * as loader from "@grpc/proto-loader";
import { createServer } from "@weft/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addHealth, addReflection, type GrpcListener, listenGrpc } from "../../src/index.ts";
import { type AnyClient, CatalogService, catalogImpl, newObserved, root } from "./fixtures.ts";

interface ReflectionResponse {
  validHost: string;
  originalRequest: unknown;
  messageResponse: string;
  fileDescriptorResponse?: { fileDescriptorProto: Buffer[] };
  listServicesResponse?: { service: Array<{ name: string }> };
  allExtensionNumbersResponse?: { baseTypeName: string; extensionNumber: number[] };
  errorResponse?: { errorCode: number; errorMessage: string };
}

/**
 * A reflection client the way generic tools talk to a server: grpc-js with a service definition built
 * at run time by proto-loader from the vendored reflection .proto, no generated code.
 */
function reflectionClient(address: string, version: "v1" | "v1alpha") {
  const def = loader.loadSync(`grpc/reflection/${version}/reflection.proto`, {
    includeDirs: [`${root}packages/grpc/proto`],
    oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(def) as AnyClient;
  const client = new pkg.grpc.reflection[version].ServerReflection(
    address,
    grpc.credentials.createInsecure(),
  );
  const call = client.ServerReflectionInfo();
  const waiters: Array<(r: ReflectionResponse) => void> = [];
  call.on("data", (r: ReflectionResponse) => waiters.shift()?.(r));
  call.on("error", () => {});
  return {
    ask(request: Record<string, unknown>): Promise<ReflectionResponse> {
      return new Promise((resolve) => {
        waiters.push(resolve);
        call.write({ host: "localhost", ...request });
      });
    },
    close() {
      call.end();
      client.close();
    },
  };
}

const decode = (bytes: Buffer[]) => bytes.map((b) => fromBinary(FileDescriptorProtoSchema, b));

/** Orders files so each comes after its imports, as a FileDescriptorSet wants them. */
function dependenciesFirst(files: FileDescriptorProto[]): FileDescriptorProto[] {
  const byName = new Map(files.map((f) => [f.name, f]));
  const out: FileDescriptorProto[] = [];
  const visit = (f: FileDescriptorProto) => {
    if (out.includes(f)) return;
    for (const d of f.dependency) {
      const dep = byName.get(d);
      if (dep !== undefined) visit(dep);
    }
    out.push(f);
  };
  for (const f of files) visit(f);
  return out;
}

describe("gRPC server reflection", () => {
  let listener: GrpcListener;
  let server: ReturnType<typeof createServer>;

  beforeAll(async () => {
    server = createServer({ onError: () => {} });
    server.register(CatalogService, catalogImpl(newObserved()));
    addHealth(server);
    addReflection(server);
    listener = await listenGrpc(server);
  });
  afterAll(async () => {
    await server.shutdown({ timeoutMs: 1000 });
    await listener.close();
  });

  for (const version of ["v1", "v1alpha"] as const) {
    it(`${version}: lists the services`, async () => {
      const r = reflectionClient(`127.0.0.1:${listener.port}`, version);
      const reply = await r.ask({ listServices: "" });
      r.close();
      expect(reply.messageResponse).toBe("listServicesResponse");
      expect(reply.validHost).toBe("localhost");
      expect(reply.listServicesResponse?.service.map((s) => s.name)).toEqual([
        "catalog.v1.Catalog",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
      ]);
    });
  }

  it("file_containing_symbol: the file with its transitive dependencies, each file once per stream", async () => {
    const r = reflectionClient(`127.0.0.1:${listener.port}`, "v1");
    const first = await r.ask({ fileContainingSymbol: "catalog.v1.Catalog" });
    const files = decode(first.fileDescriptorResponse!.fileDescriptorProto);
    expect(files[0]?.name).toBe("catalog/v1/catalog.proto");
    expect(files.map((f) => f.name).sort()).toEqual([
      "catalog/v1/catalog.proto",
      "google/api/annotations.proto",
      "google/api/http.proto",
      "google/protobuf/descriptor.proto",
      "google/protobuf/empty.proto",
      "weft/v1/options.proto",
    ]);
    // together they describe the service completely: a registry can be built from them
    const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: dependenciesFirst(files) }));
    expect(registry.getService("catalog.v1.Catalog")?.methods.map((m) => m.name)).toContain("WatchPrices");

    // a method, a message, a field: their file only, since its dependencies were sent already
    for (const symbol of ["catalog.v1.Catalog.Lookup", "catalog.v1.Item", "catalog.v1.Item.price_cents"]) {
      const again = await r.ask({ fileContainingSymbol: symbol });
      expect(decode(again.fileDescriptorResponse!.fileDescriptorProto).map((f) => f.name)).toEqual([
        "catalog/v1/catalog.proto",
      ]);
    }
    const health = await r.ask({ fileContainingSymbol: "grpc.health.v1.HealthCheckResponse.ServingStatus" });
    expect(decode(health.fileDescriptorResponse!.fileDescriptorProto)[0]?.name).toBe(
      "grpc/health/v1/health.proto",
    );
    r.close();
  });

  it("file_by_filename, extensions, and NOT_FOUND errors", async () => {
    const r = reflectionClient(`127.0.0.1:${listener.port}`, "v1alpha");
    const empty = await r.ask({ fileByFilename: "google/protobuf/empty.proto" });
    expect(decode(empty.fileDescriptorResponse!.fileDescriptorProto)[0]?.messageType[0]?.name).toBe("Empty");
    const ext = await r.ask({ allExtensionNumbersOfType: "google.protobuf.MethodOptions" });
    expect(ext.allExtensionNumbersResponse?.extensionNumber).toEqual(
      expect.arrayContaining([72295728, 51001]),
    );
    const byExt = await r.ask({
      fileContainingExtension: { containingType: "google.protobuf.MethodOptions", extensionNumber: 51001 },
    });
    expect(decode(byExt.fileDescriptorResponse!.fileDescriptorProto)[0]?.name).toBe("weft/v1/options.proto");
    const missing = await r.ask({ fileContainingSymbol: "nope.Nope" });
    expect(missing.errorResponse?.errorCode).toBe(grpc.status.NOT_FOUND);
    const noFile = await r.ask({ fileByFilename: "nope.proto" });
    expect(noFile.errorResponse?.errorCode).toBe(grpc.status.NOT_FOUND);
    r.close();
  });
});
