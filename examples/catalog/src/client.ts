import { createClient as createConnectClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { createTcpTransport, WeftError } from "@weft/core";
import { createGrpcTransport } from "@weft/grpc";
import { Catalog } from "./gen/catalog/v1/catalog_pb.ts";
import { createCatalogClient } from "./gen/catalog/v1/catalog_weft.ts";

const ports = JSON.parse(process.argv[2] ?? '{"weft":4000,"grpc":4001,"rest":4002}') as {
  weft: number;
  grpc: number;
  rest: number;
};
const say = (line: string) => process.stdout.write(`${line}\n`);
const eur = (cents: bigint) => `${(Number(cents) / 100).toFixed(2)} EUR`;

const transport = createTcpTransport({ address: `127.0.0.1:${ports.weft}` });
const catalog = createCatalogClient(transport, { timeoutMs: 2000 });

say(`[client] --- Weft protocol over TCP (127.0.0.1:${ports.weft}): every call kind ---`);

// 1. Unary
const item = await catalog.lookup(
  { sku: "A-100" },
  { onHeader: (h) => say(`[client]   response header x-served-calls=${h.get("x-served-calls")}`) },
);
say(`[client] unary lookup A-100 -> ${item.name}, ${eur(item.priceCents)}`);

// 2. A typed error crosses the wire intact
try {
  await catalog.lookup({ sku: "Z-999" });
} catch (e) {
  if (!(e instanceof WeftError)) throw e;
  say(`[client] unary lookup Z-999 -> error code=${e.code} reason=${e.reason} message="${e.rawMessage}"`);
}

// 3. Server streaming
const ticks: string[] = [];
for await (const tick of catalog.watchPrices({ sku: "B-200", ticks: 5 })) {
  ticks.push(`#${tick.seq}:${tick.priceCents}`);
}
say(`[client] server-stream watchPrices B-200 -> ${ticks.join(" ")}`);

// 4. Client streaming
async function* newItems() {
  for (let i = 1; i <= 3; i++)
    yield { sku: `C-${i}00`, name: `Bobbin no. ${i}`, priceCents: BigInt(300 + i * 10) };
}
const { imported } = await catalog.importItems(newItems());
say(`[client] client-stream importItems -> imported ${imported} items`);

// 5. Bidirectional streaming
async function* asks() {
  yield { sku: "A-100", quantity: 2 };
  yield { sku: "C-100", quantity: 12 };
}
for await (const q of catalog.quote(asks())) {
  say(`[client] bidi quote ${q.quantity} x ${q.sku} -> ${eur(q.totalCents)}`);
}

// 6. One-way: resolves as soon as the frame is written; the server never answers
await catalog.audit({ actor: "demo-client", action: "browsed the catalog" });
say("[client] one-way audit sent (no response expected)");

// 7. Deadlines: a stream that needs ~100 ms cannot finish in 50 ms
try {
  for await (const _ of catalog.watchPrices({ sku: "A-100", ticks: 5 }, { timeoutMs: 50 })) {
    // reading until the deadline cuts the stream
  }
} catch (e) {
  if (!(e instanceof WeftError)) throw e;
  say(`[client] watchPrices with a 50 ms budget -> ${e.reason}`);
}

await transport.close();

// The same contract over the other protocols the server speaks.
say(`[client] --- the same service over other protocols ---`);

// gRPC: the generated Weft client on a gRPC transport (any gRPC server would do).
const grpcTransport = createGrpcTransport({ address: `127.0.0.1:${ports.grpc}` });
const overGrpc = await createCatalogClient(grpcTransport).lookup({ sku: "B-200" });
say(`[client] gRPC    lookup B-200 -> ${overGrpc.name}`);
await grpcTransport.close();

// Connect (JSON over HTTP/1.1, as a browser would), with the Connect project's own client.
const connect = createConnectClient(
  Catalog,
  createConnectTransport({ baseUrl: `http://127.0.0.1:${ports.grpc}`, httpVersion: "1.1" }),
);
const overConnect = await connect.lookup({ sku: "A-100" });
say(`[client] Connect lookup A-100 -> ${overConnect.name}`);

// REST/JSON, versioned in the URL and by content negotiation.
const rest = `http://127.0.0.1:${ports.rest}`;
const v1 = (await (await fetch(`${rest}/v1/items/A-100`)).json()) as { name: string; priceCents: string };
say(`[client] REST    GET /v1/items/A-100 -> ${JSON.stringify(v1)}`);
const v2 = await (await fetch(`${rest}/v2/items/A-100`)).json();
say(`[client] REST    GET /v2/items/A-100 -> ${JSON.stringify(v2)}`);
const negotiated = await fetch(`${rest}/items/A-100`, {
  headers: { accept: "application/vnd.weft+json; version=2" },
});
say(
  `[client] REST    GET /items/A-100 (Accept: ...; version=2) -> ${JSON.stringify(await negotiated.json())}`,
);
const missing = await fetch(`${rest}/v1/items/Z-999`);
say(`[client] REST    GET /v1/items/Z-999 -> HTTP ${missing.status} ${JSON.stringify(await missing.json())}`);
say(`[client] the OpenAPI 3.1 document of the REST API is at ${rest}/openapi.json`);
say("[client] done");
