// A service from the installed packages: Weft TCP, gRPC and REST on free ports. Prints its ports as
// one JSON line, and shuts down when its standard input closes.
import { createServer } from "@weft/core";
import { listenGrpc } from "@weft/grpc";
import { listenRest } from "@weft/http";
import { type ShopHandlers, ShopService } from "./gen/shop/v1/shop_weft.ts";

let audits = 0;
const shop: ShopHandlers = {
  getItem: ({ sku }) => ({ sku, name: `item ${sku}`, priceCents: 1250n }),
  async *watchPrices({ sku, count }) {
    for (let i = 0; i < count; i++) yield { sku, name: `tick ${i}`, priceCents: 100n + BigInt(i) };
  },
  audit: () => {
    audits++;
  },
};

const server = createServer();
server.register(ShopService, shop);
const weft = await server.listen({ host: "127.0.0.1", port: 0 });
const grpc = await listenGrpc(server, { host: "127.0.0.1", port: 0 });
const rest = await listenRest(server, { host: "127.0.0.1", port: 0 });
process.stdout.write(`${JSON.stringify({ weft: weft.port, grpc: grpc.port, rest: rest.port })}\n`);

process.stdin.resume();
process.stdin.on("end", async () => {
  await server.shutdown({ timeoutMs: 2000 });
  await Promise.all([grpc.close(), rest.close()]);
  process.stdout.write(`${JSON.stringify({ audits })}\n`);
});
