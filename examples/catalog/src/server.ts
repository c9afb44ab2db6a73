import { createServer, type Interceptor } from "@weft/core";
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

const port = Number(process.env.PORT ?? 0);
const address = await server.listen({ host: "127.0.0.1", port });
say(`LISTENING ${address.port}`);

const stop = async () => {
  const { cancelled } = await server.shutdown({ timeoutMs: 2000 });
  say(`[server] shut down gracefully (${cancelled} calls cancelled)`);
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
