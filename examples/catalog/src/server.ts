import { createServer, type Interceptor } from "@weft/core";
import { addHealth, addReflection, listenGrpc } from "@weft/grpc";
import { listenRest } from "@weft/http";
import { createCatalog } from "./catalog-service.ts";
import { CatalogService } from "./gen/catalog/v1/catalog_weft.ts";
import { CatalogService as CatalogV2Service } from "./gen/catalog/v2/catalog_weft.ts";

const say = (line: string) => process.stdout.write(`${line}\n`);

/** A server interceptor: counts calls per method, visible in the `x-served-calls` response header. */
const calls = new Map<string, number>();
const counting: Interceptor = (next) => async (call) => {
  const n = (calls.get(call.method.path) ?? 0) + 1;
  calls.set(call.method.path, n);
  const result = await next(call);
  result.headers.set("x-served-calls", String(n));
  return result;
};

const catalog = createCatalog(say);
const server = createServer({ interceptors: [counting] });
server.register(CatalogService, catalog.v1);
server.register(CatalogV2Service, catalog.v2);

addHealth(server);
addReflection(server);

// One implementation, four ways in: Weft's own protocol over TCP; gRPC, gRPC-web and Connect over
// HTTP/2 (and HTTP/1.1); REST/JSON from the google.api.http annotations. The same interceptors run
// on every one of them.
const weft = await server.listen({ host: "127.0.0.1", port: Number(process.env.WEFT_PORT ?? 0) });
const grpc = await listenGrpc(server, { host: "127.0.0.1", port: Number(process.env.GRPC_PORT ?? 0) });
const rest = await listenRest(server, { host: "127.0.0.1", port: Number(process.env.REST_PORT ?? 0) });
say(`LISTENING weft=${weft.port} grpc=${grpc.port} rest=${rest.port}`);

const stop = async () => {
  // Draining the Weft server also stops the gRPC and REST listeners from taking new calls.
  const { cancelled } = await server.shutdown({ timeoutMs: 2000 });
  await Promise.all([grpc.close(), rest.close()]);
  say(`[server] shut down gracefully (${cancelled} calls cancelled)`);
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
