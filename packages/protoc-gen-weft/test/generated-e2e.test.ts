// The generated client and a server implementing the generated handler interface, talking through the
// in-memory transport (the real Weft protocol) for every call kind, in each serializer.
import { create } from "@bufbuild/protobuf";
import {
  Code,
  createMemoryTransport,
  createServer,
  type SerializerName,
  type Server,
  type Transport,
  WeftError,
} from "@weft/core";
import { afterEach, describe, expect, it } from "vitest";
import {
  type AuditEvent,
  AuditEventSchema,
  type Item,
  ItemSchema,
  PriceTickSchema,
  QuoteReplySchema,
} from "../../../examples/catalog/src/gen/catalog/v1/catalog_pb.ts";
import {
  type CatalogHandlers,
  CatalogService,
  createCatalogClient,
} from "../../../examples/catalog/src/gen/catalog/v1/catalog_weft.ts";

const servers: Server[] = [];
const transports: Transport[] = [];
afterEach(async () => {
  await Promise.all(transports.splice(0).map((t) => t.close()));
  await Promise.all(servers.splice(0).map((s) => s.shutdown({ timeoutMs: 1000 })));
});

async function* from<T>(items: T[]): AsyncIterable<T> {
  for (const item of items) yield item;
}

async function collect<T>(stream: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const m of stream) out.push(m);
  return out;
}

function catalog() {
  const items = new Map<string, Item>([
    ["A-1", create(ItemSchema, { sku: "A-1", name: "anvil", priceCents: 1250n })],
    ["B-2", create(ItemSchema, { sku: "B-2", name: "bellows", priceCents: 9900n })],
  ]);
  const audits: AuditEvent[] = [];
  let audited: (event: AuditEvent) => void = () => {};
  const handlers: CatalogHandlers = {
    lookup(req) {
      const item = items.get(req.sku);
      if (item === undefined)
        throw new WeftError(Code.NOT_FOUND, `no item ${req.sku}`, { reason: "NO_ITEM" });
      return item;
    },
    listItems: (req) => ({ items: [...items.values()].filter((i) => i.name.startsWith(req.namePrefix)) }),
    putItem(req) {
      const item = create(ItemSchema, req.item);
      items.set(item.sku, item);
      return item;
    },
    async *watchPrices(req) {
      const base = items.get(req.sku)?.priceCents ?? 0n;
      for (let seq = 1; seq <= req.ticks; seq++) yield { sku: req.sku, priceCents: base + BigInt(seq), seq };
    },
    async importItems(incoming) {
      let imported = 0;
      for await (const item of incoming) {
        items.set(item.sku, item);
        imported++;
      }
      return { imported };
    },
    async *quote(requests) {
      for await (const r of requests) {
        const price = items.get(r.sku)?.priceCents ?? 0n;
        yield { sku: r.sku, quantity: r.quantity, totalCents: price * BigInt(r.quantity) };
      }
    },
    audit(event) {
      audits.push(event);
      audited(event);
    },
  };
  const serializers = new Set<SerializerName>();
  const server = createServer({
    onError: () => {},
    interceptors: [
      (next) => (call) => {
        serializers.add(call.serializer);
        return next(call);
      },
    ],
  });
  server.register(CatalogService, handlers);
  servers.push(server);
  const transport = createMemoryTransport(server);
  transports.push(transport);
  const nextAudit = () => new Promise<AuditEvent>((resolve) => (audited = resolve));
  return { client: createCatalogClient(transport), items, audits, nextAudit, serializers };
}

describe.each<SerializerName>(["protobuf", "json", "msgpack"])("generated code over %s", (serializer) => {
  const opts = { serializer };
  let server: ReturnType<typeof catalog>;
  const setup = () => (server = catalog());
  afterEach(() => {
    // every call of the test travelled in the serializer it asked for
    expect([...server.serializers]).toEqual([serializer]);
  });

  it("unary", async () => {
    const { client } = setup();
    expect(await client.lookup({ sku: "A-1" }, opts)).toEqual(
      create(ItemSchema, { sku: "A-1", name: "anvil", priceCents: 1250n }),
    );
    const listed = await client.listItems({ namePrefix: "bel" }, opts);
    expect(listed.items.map((i) => i.sku)).toEqual(["B-2"]);
    const put = await client.putItem({ item: { sku: "C-3", name: "chisel", priceCents: 300n } }, opts);
    expect(put.priceCents).toBe(300n);
    await expect(client.lookup({ sku: "Z-9" }, opts)).rejects.toMatchObject({
      code: Code.NOT_FOUND,
      reason: "NO_ITEM",
    });
  });

  it("server streaming", async () => {
    const { client } = setup();
    expect(await collect(client.watchPrices({ sku: "A-1", ticks: 3 }, opts))).toEqual([
      create(PriceTickSchema, { sku: "A-1", priceCents: 1251n, seq: 1 }),
      create(PriceTickSchema, { sku: "A-1", priceCents: 1252n, seq: 2 }),
      create(PriceTickSchema, { sku: "A-1", priceCents: 1253n, seq: 3 }),
    ]);
  });

  it("client streaming", async () => {
    const { client, items } = setup();
    const summary = await client.importItems(
      from([
        { sku: "D-4", name: "drill", priceCents: 5000n },
        create(ItemSchema, { sku: "E-5", name: "file" }),
      ]),
      opts,
    );
    expect(summary.imported).toBe(2);
    expect(items.get("D-4")).toEqual(create(ItemSchema, { sku: "D-4", name: "drill", priceCents: 5000n }));
  });

  it("bidi streaming", async () => {
    const { client } = setup();
    const replies = await collect(
      client.quote(
        from([
          { sku: "A-1", quantity: 2 },
          { sku: "B-2", quantity: 1 },
        ]),
        opts,
      ),
    );
    expect(replies).toEqual([
      create(QuoteReplySchema, { sku: "A-1", quantity: 2, totalCents: 2500n }),
      create(QuoteReplySchema, { sku: "B-2", quantity: 1, totalCents: 9900n }),
    ]);
  });

  it("one-way", async () => {
    const { client, audits, nextAudit } = setup();
    const handled = nextAudit();
    await expect(client.audit({ actor: "ops", action: "reprice" }, opts)).resolves.toBeUndefined();
    expect(await handled).toEqual(create(AuditEventSchema, { actor: "ops", action: "reprice" }));
    expect(audits).toHaveLength(1);
  });
});
