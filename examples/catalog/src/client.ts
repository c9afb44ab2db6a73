import { createTcpTransport, WeftError } from "@weft/core";
import { createCatalogClient } from "./gen/catalog/v1/catalog_weft.ts";

const address = process.argv[2] ?? process.env.CATALOG_ADDRESS ?? "127.0.0.1:4000";
const say = (line: string) => process.stdout.write(`${line}\n`);
const eur = (cents: bigint) => `${(Number(cents) / 100).toFixed(2)} EUR`;

const transport = createTcpTransport({ address });
const catalog = createCatalogClient(transport, { timeoutMs: 2000 });

say(`[client] connecting to catalog at ${address} (Weft protocol over TCP)`);

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
say("[client] done");
