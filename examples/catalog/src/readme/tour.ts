/**
 * The README's tour as a program: every line of the README's serve and call blocks appears here
 * in the same order (readme.test.ts checks that, then runs `tour`).
 */
import { Code, createClient, createServer, createTcpTransport, WeftError } from "@weft/core";
import { addHealth, addReflection, createGrpcTransport, listenGrpc } from "@weft/grpc";
import { listenRest } from "@weft/http";
import { Catalog } from "./catalog.ts";

const nextPrice = async (sku: string) => (sku === "A-100" ? 1250 : 0);

export async function tour(log: (line: string) => void): Promise<void> {
  const server = createServer();
  server.register(Catalog, {
    lookup({ sku }) {
      if (sku !== "A-100") {
        throw new WeftError(Code.NOT_FOUND, `no item ${sku}`, { reason: "ITEM_NOT_FOUND" });
      }
      return { sku, priceCents: 1250 };
    },
    async *watchPrices({ sku }, ctx) {
      while (!ctx.signal.aborted) yield { priceCents: await nextPrice(sku) };
    },
    audit(event) {
      log(event.action); // one-way: nothing is sent back
    },
  });
  const { port } = await server.listen({ host: "127.0.0.1", port: 0 }); // 0: any free port
  const stop = () => server.shutdown({ timeoutMs: 5000 });

  const catalog = createClient(Catalog, createTcpTransport({ address: `127.0.0.1:${port}` }));
  const item = await catalog.lookup({ sku: "A-100" }, { timeoutMs: 200 });
  for await (const tick of catalog.watchPrices({ sku: "A-100" })) {
    log(`price ${tick.priceCents}`);
    break; // leaving the loop cancels the stream on the server
  }
  await catalog.audit({ action: "viewed" }); // settles once written

  log(`lookup ${item.sku} ${item.priceCents}`);

  addHealth(server);
  addReflection(server);
  const grpc = await listenGrpc(server, { port: 0 }); // gRPC, gRPC-web and Connect on one port
  const rest = await listenRest(server, { port: 0 }); // REST/JSON from google.api.http, /openapi.json
  const overGrpc = createClient(Catalog, createGrpcTransport({ address: `127.0.0.1:${grpc.port}` }));
  log(`over gRPC ${(await overGrpc.lookup({ sku: "A-100" })).priceCents}`);

  await stop();
  await Promise.all([grpc.close(), rest.close()]);
}
