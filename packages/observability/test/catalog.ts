/** The example catalog service, served for the end-to-end tests. */
import { createClient, createServer, type Server, type ServerOptions } from "@weft/core";
import { createGrpcTransport, listenGrpc } from "@weft/grpc";
import { listenRest } from "@weft/http";
import { createCatalog } from "../../../examples/catalog/src/catalog-service.ts";
import { CatalogService } from "../../../examples/catalog/src/gen/catalog/v1/catalog_weft.ts";

/** A server made with `options`, serving the catalog. */
export function catalogServer(options: ServerOptions = {}): Server {
  return createServer(options).register(CatalogService, createCatalog(() => {}).v1);
}

/**
 * `catalogServer(options)` behind a gRPC listener (gRPC-web and Connect too) and a REST one, and a
 * gRPC client of it; `close` shuts all of it down.
 */
export async function catalogFrontEnds(options: ServerOptions = {}) {
  const server = catalogServer(options);
  const grpc = await listenGrpc(server, { host: "127.0.0.1", port: 0 });
  const rest = await listenRest(server, { host: "127.0.0.1", port: 0 });
  const transport = createGrpcTransport({ address: `127.0.0.1:${grpc.port}` });
  const client = createClient(CatalogService, transport);
  const close = async (): Promise<void> => {
    await server.shutdown({ timeoutMs: 2000, deregisterDelayMs: 0 });
    await Promise.all([grpc.close(), rest.close()]);
    await transport.close();
  };
  return { server, grpc, rest, transport, client, close };
}
