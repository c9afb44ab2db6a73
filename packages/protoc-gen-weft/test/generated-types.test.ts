// Type tests of the code generated for the example's catalog.v1.Catalog. `tsc` (in `npm test`) checks
// them: every `@ts-expect-error` below must be an error, or the type check fails.
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { GenService } from "@bufbuild/protobuf/codegenv2";
import type { CallOptions, HandlerContext, MethodDef, ProtoMethods } from "@weft/core";
import { describe, expect, expectTypeOf, it } from "vitest";
import type {
  AuditEvent,
  AuditEventSchema,
  Catalog,
  ImportSummarySchema,
  Item,
  ItemSchema,
  LookupRequest,
  LookupRequestSchema,
  PriceTick,
  PriceTickSchema,
  QuoteReply,
  QuoteReplySchema,
  QuoteRequest,
  QuoteRequestSchema,
  WatchPricesRequest,
  WatchPricesRequestSchema,
} from "../../../examples/catalog/src/gen/catalog/v1/catalog_pb.ts";
import {
  type CatalogClient,
  type CatalogHandlers,
  type CatalogMethods,
  CatalogService,
  createCatalogClient,
} from "../../../examples/catalog/src/gen/catalog/v1/catalog_weft.ts";

describe("generated client types", () => {
  it("unary: init shape in, message out", () => {
    expectTypeOf<CatalogClient["lookup"]>().toEqualTypeOf<
      (request: MessageInitShape<typeof LookupRequestSchema>, options?: CallOptions) => Promise<Item>
    >();
  });

  it("server streaming: an AsyncIterable of the response message", () => {
    expectTypeOf<CatalogClient["watchPrices"]>().toEqualTypeOf<
      (
        request: MessageInitShape<typeof WatchPricesRequestSchema>,
        options?: CallOptions,
      ) => AsyncIterable<PriceTick>
    >();
  });

  it("client streaming: an AsyncIterable of init shapes in, one message out", () => {
    expectTypeOf<CatalogClient["importItems"]>()
      .parameter(0)
      .toEqualTypeOf<AsyncIterable<MessageInitShape<typeof ItemSchema>>>();
    expectTypeOf<CatalogClient["importItems"]>()
      .returns.resolves.toHaveProperty("imported")
      .toEqualTypeOf<number>();
  });

  it("bidi streaming: AsyncIterables both ways", () => {
    expectTypeOf<CatalogClient["quote"]>().toEqualTypeOf<
      (
        requests: AsyncIterable<MessageInitShape<typeof QuoteRequestSchema>>,
        options?: CallOptions,
      ) => AsyncIterable<QuoteReply>
    >();
  });

  it("one-way: resolves to void", () => {
    expectTypeOf<CatalogClient["audit"]>().returns.toEqualTypeOf<Promise<void>>();
    expectTypeOf<CatalogClient["audit"]>()
      .parameter(0)
      .toEqualTypeOf<MessageInitShape<typeof AuditEventSchema>>();
  });

  it("has exactly the proto's methods", () => {
    expectTypeOf<keyof CatalogClient>().toEqualTypeOf<
      "lookup" | "listItems" | "putItem" | "watchPrices" | "importItems" | "quote" | "audit"
    >();
    expectTypeOf(createCatalogClient).returns.toEqualTypeOf<CatalogClient>();
  });

  it("rejects wrong requests, misspelled methods and wrong stream element types", () => {
    // Only compiled, never run: tsc checks that each marked line is an error.
    const compileOnly = async (
      client: CatalogClient,
      items: AsyncIterable<Item>,
      ticks: AsyncIterable<PriceTick>,
    ) => {
      // @ts-expect-error wrong request type: sku is a string
      await client.lookup({ sku: 42 });
      // @ts-expect-error wrong request message: an Item is not a LookupRequest
      await client.lookup({} as Item);
      // @ts-expect-error misspelled method
      await client.lookUp({ sku: "A-1" });
      // @ts-expect-error a unary method takes one message, not a stream
      await client.putItem(items);
      // @ts-expect-error server stream elements are PriceTicks, not Items
      const prices: AsyncIterable<Item> = client.watchPrices({ sku: "A-1" });
      // @ts-expect-error client stream elements are Items, not PriceTicks
      await client.importItems(ticks);
      // @ts-expect-error bidi request elements are QuoteRequests, not Items
      for await (const _ of client.quote(items));
      // @ts-expect-error bidi response elements are QuoteReplies, not PriceTicks
      const replies: AsyncIterable<PriceTick> = client.quote([] as unknown as AsyncIterable<QuoteRequest>);
      // @ts-expect-error a one-way call has no response to read
      (await client.audit({ actor: "a", action: "b" })).sku;
      return [prices, replies];
    };
    expect(typeof compileOnly).toBe("function");
  });
});

describe("generated server interface", () => {
  it("has one handler per method, each shaped by its kind", () => {
    expectTypeOf<CatalogHandlers["lookup"]>().toEqualTypeOf<
      (
        request: LookupRequest,
        ctx: HandlerContext,
      ) => MessageInitShape<typeof ItemSchema> | Promise<MessageInitShape<typeof ItemSchema>>
    >();
    expectTypeOf<CatalogHandlers["watchPrices"]>().toEqualTypeOf<
      (
        request: WatchPricesRequest,
        ctx: HandlerContext,
      ) => AsyncIterable<MessageInitShape<typeof PriceTickSchema>>
    >();
    expectTypeOf<CatalogHandlers["importItems"]>().toEqualTypeOf<
      (
        requests: AsyncIterable<Item>,
        ctx: HandlerContext,
      ) =>
        | MessageInitShape<typeof ImportSummarySchema>
        | Promise<MessageInitShape<typeof ImportSummarySchema>>
    >();
    expectTypeOf<CatalogHandlers["quote"]>().toEqualTypeOf<
      (
        requests: AsyncIterable<QuoteRequest>,
        ctx: HandlerContext,
      ) => AsyncIterable<MessageInitShape<typeof QuoteReplySchema>>
    >();
    expectTypeOf<CatalogHandlers["audit"]>().toEqualTypeOf<
      (request: AuditEvent, ctx: HandlerContext) => void | Promise<void>
    >();
  });

  it("rejects handlers of the wrong shape", () => {
    const ok: CatalogHandlers = {
      lookup: (req) => ({ sku: req.sku, name: "n", priceCents: 1n }),
      listItems: () => ({ items: [] }),
      putItem: (req) => req.item ?? {},
      async *watchPrices(req) {
        yield { sku: req.sku, seq: 1 };
      },
      async importItems(items) {
        let imported = 0;
        for await (const _ of items) imported++;
        return { imported };
      },
      async *quote(requests) {
        for await (const r of requests) yield { sku: r.sku, quantity: r.quantity };
      },
      audit: () => {},
    };
    const bad: Partial<CatalogHandlers> = {
      // @ts-expect-error a server stream handler yields PriceTicks, not Items
      async *watchPrices() {
        yield {} as Item;
      },
      // @ts-expect-error a bidi handler yields QuoteReplies, not PriceTicks
      async *quote() {
        yield {} as PriceTick;
      },
      // @ts-expect-error a unary handler returns one message, not a stream
      async *lookup() {
        yield { sku: "x" };
      },
      // @ts-expect-error a one-way handler answers nothing
      audit: () => ({ sku: "x" }),
    };
    expect(Object.keys(ok)).toHaveLength(7);
    expect(Object.keys(bad)).toHaveLength(4);
  });
});

describe("generated service definition", () => {
  type Proto = typeof Catalog extends GenService<infer M> ? ProtoMethods<M> : never;

  it("types the methods as protoService does, except one-way ones", () => {
    expectTypeOf<CatalogMethods["lookup"]>().toEqualTypeOf<Proto["lookup"]>();
    expectTypeOf<CatalogMethods["watchPrices"]>().toEqualTypeOf<Proto["watchPrices"]>();
    expectTypeOf<CatalogMethods["importItems"]>().toEqualTypeOf<Proto["importItems"]>();
    expectTypeOf<CatalogMethods["quote"]>().toEqualTypeOf<Proto["quote"]>();
    expectTypeOf<CatalogMethods["audit"]>().toEqualTypeOf<
      MethodDef<AuditEvent, void, "oneway", MessageInitShape<typeof AuditEventSchema>>
    >();
  });

  it("matches its types at run time", () => {
    const kinds = Object.fromEntries(
      Object.entries(CatalogService.methods).map(([name, m]) => [name, m.kind]),
    );
    expect(kinds).toEqual({
      lookup: "unary",
      listItems: "unary",
      putItem: "unary",
      watchPrices: "server_streaming",
      importItems: "client_streaming",
      quote: "bidi_streaming",
      audit: "oneway",
    });
    expect(CatalogService.typeName).toBe("catalog.v1.Catalog");
    expect(CatalogService.methods.lookup.rpcName).toBe("Lookup");
    expect(CatalogService.methods.lookup.idempotent).toBe(true);
    expect(CatalogService.methods.putItem.idempotent).toBe(false);
  });
});
