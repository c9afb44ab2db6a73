import { randomUUID } from "node:crypto";
import { CONSOLE_LOGGER, createServer, type Interceptor, type Registry } from "@weft/core";
import { addHealth, addReflection, listenGrpc } from "@weft/grpc";
import { listenRest } from "@weft/http";
import { openBroker } from "./broker.ts";
import { startCatalogMessaging } from "./catalog-messaging.ts";
import { createCatalog } from "./catalog-service.ts";
import { CatalogService } from "./gen/catalog/v1/catalog_weft.ts";
import { CatalogService as CatalogV2Service } from "./gen/catalog/v2/catalog_weft.ts";
import { openRegistry } from "./registry.ts";
import { Stock } from "./stock.ts";

const say = (line: string) => process.stdout.write(`${line}\n`);

/** This instance's id in the registry (`CATALOG_INSTANCE`, default a random UUID). */
const instanceId = process.env.CATALOG_INSTANCE ?? randomUUID();

/**
 * A server interceptor: counts calls per method, visible in the `x-served-calls` response header,
 * and names the instance that served the call in `x-instance`.
 */
const calls = new Map<string, number>();
const counting: Interceptor = (next) => async (call) => {
  const n = (calls.get(call.method.path) ?? 0) + 1;
  calls.set(call.method.path, n);
  const result = await next(call);
  result.headers.set("x-served-calls", String(n));
  result.headers.set("x-instance", instanceId);
  return result;
};

// With WEFT_REGISTRY (local:///?dir=… or etcd://host:port) the server advertises its three addresses
// there, so clients find it by the service's name; shutdown deregisters it before draining. The
// broker (`WEFT_BROKER`, default the brokerless direct one) finds the other processes there too.
const registry: Registry | undefined =
  process.env.WEFT_REGISTRY === undefined ? undefined : await openRegistry(process.env.WEFT_REGISTRY);
const broker = await openBroker(process.env.WEFT_BROKER, registry);

// every lookup publishes catalog.item.viewed, once the messaging has started
let viewed = (_sku: string): void => {};
const catalog = createCatalog(say, (sku) => viewed(sku));
const messaging = await startCatalogMessaging(broker, instanceId, catalog.priceOf, CONSOLE_LOGGER);
viewed = messaging.viewed;
const server = createServer({ interceptors: [counting] });
server.register(CatalogService, catalog.v1);
server.register(CatalogV2Service, catalog.v2);
server.register(Stock, messaging.stock);

addHealth(server);
addReflection(server);

// One implementation, four ways in: Weft's own protocol over TCP; gRPC, gRPC-web and Connect over
// HTTP/2 (and HTTP/1.1); REST/JSON from the google.api.http annotations. The same interceptors run
// on every one of them.
const weft = await server.listen({ host: "127.0.0.1", port: Number(process.env.WEFT_PORT ?? 0) });
const grpc = await listenGrpc(server, { host: "127.0.0.1", port: Number(process.env.GRPC_PORT ?? 0) });
const rest = await listenRest(server, { host: "127.0.0.1", port: Number(process.env.REST_PORT ?? 0) });

if (registry !== undefined) await server.registerWith(registry, { id: instanceId });
say(`LISTENING weft=${weft.port} grpc=${grpc.port} rest=${rest.port} id=${instanceId}`);

const stop = async () => {
  // Leaves the registry first, lets watching clients move away for 300 ms, then drains; draining the
  // Weft server also stops the gRPC and REST listeners from taking new calls.
  const { cancelled } = await server.shutdown({ timeoutMs: 2000, deregisterDelayMs: 300 });
  // then the subscriptions drain (after the server: a Stock stream still waits for its outcome)
  await messaging.close();
  await broker.close();
  await registry?.close();
  await Promise.all([grpc.close(), rest.close()]);
  say(`[server] shut down gracefully (${cancelled} calls cancelled)`);
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
