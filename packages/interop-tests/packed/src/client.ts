// Calls the server of server.ts over every front end and prints what came back as one JSON line.
import { createTcpTransport } from "@weft/core";
import { createGrpcTransport } from "@weft/grpc";
import { createShopClient } from "./gen/shop/v1/shop_weft.ts";

const ports = JSON.parse(process.argv[2] ?? "{}") as { weft: number; grpc: number; rest: number };

const tcp = createTcpTransport({ address: `127.0.0.1:${ports.weft}` });
const overTcp = createShopClient(tcp, { timeoutMs: 5000 });
const unary = await overTcp.getItem({ sku: "A-1" });
const stream: string[] = [];
for await (const tick of overTcp.watchPrices({ sku: "A-1", count: 3 }))
  stream.push(`${tick.name}=${tick.priceCents}`);
await overTcp.audit({ action: "viewed" });

const grpcTransport = createGrpcTransport({ address: `127.0.0.1:${ports.grpc}` });
const grpc = await createShopClient(grpcTransport, { timeoutMs: 5000 }).getItem({ sku: "B-2" });

const rest = await fetch(`http://127.0.0.1:${ports.rest}/v1/items/C-3`);

await Promise.all([tcp.close(), grpcTransport.close()]);
process.stdout.write(
  `${JSON.stringify({
    node: process.versions.node,
    unary: { sku: unary.sku, name: unary.name, priceCents: String(unary.priceCents) },
    stream,
    grpc: { sku: grpc.sku, priceCents: String(grpc.priceCents) },
    rest: { status: rest.status, body: await rest.json() },
  })}\n`,
);
