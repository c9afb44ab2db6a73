import { Code, type HandlerContext, WeftError } from "@weft/core";
import type { Item } from "./gen/catalog/v1/catalog_pb.ts";
import type { CatalogHandlers } from "./gen/catalog/v1/catalog_weft.ts";
import type { CatalogHandlers as CatalogV2Handlers } from "./gen/catalog/v2/catalog_weft.ts";

/**
 * The example's in-memory catalog, implementing the contract in proto/catalog/v1/catalog.proto.
 * `onLookup` hears every SKU found by a lookup (the server publishes `catalog.item.viewed` there);
 * `priceOf` reads a price in cents (`undefined` for an unknown SKU).
 */
export function createCatalog(
  log: (line: string) => void,
  onLookup?: (sku: string) => void,
): { v1: CatalogHandlers; v2: CatalogV2Handlers; priceOf: (sku: string) => bigint | undefined } {
  const items = new Map<string, Omit<Item, "$typeName">>([
    ["A-100", { sku: "A-100", name: "Loom shuttle", priceCents: 1250n }],
    ["B-200", { sku: "B-200", name: "Warp thread (1 km)", priceCents: 899n }],
  ]);
  let audits = 0;

  const find = (sku: string) => {
    const item = items.get(sku);
    if (item === undefined) {
      throw new WeftError(Code.NOT_FOUND, `no item ${sku}`, {
        reason: "ITEM_NOT_FOUND",
        details: [{ type: "catalog.v1.Missing", value: { sku } }],
      });
    }
    return item;
  };

  const v1: CatalogHandlers = {
    lookup: ({ sku }) => {
      const item = find(sku);
      onLookup?.(sku);
      return item;
    },
    listItems: ({ namePrefix, pageSize }) => ({
      items: [...items.values()].filter((i) => i.name.startsWith(namePrefix)).slice(0, pageSize || undefined),
    }),
    putItem: ({ item }) => {
      if (item === undefined || item.sku === "") {
        throw new WeftError(Code.INVALID_ARGUMENT, "item.sku is required", { reason: "SKU_REQUIRED" });
      }
      items.set(item.sku, { sku: item.sku, name: item.name, priceCents: item.priceCents });
      return item;
    },
    async *watchPrices({ sku, ticks }, ctx: HandlerContext) {
      const base = items.get(sku)?.priceCents ?? 1000n;
      for (let seq = 1; seq <= ticks && !ctx.signal.aborted; seq++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        yield { sku, seq, priceCents: base + BigInt(Math.round(Math.sin(seq) * 50)) };
      }
    },
    async importItems(stream) {
      let imported = 0;
      for await (const item of stream) {
        items.set(item.sku, { sku: item.sku, name: item.name, priceCents: item.priceCents });
        imported++;
      }
      return { imported };
    },
    async *quote(requests) {
      for await (const { sku, quantity } of requests) {
        const unit = items.get(sku)?.priceCents ?? 0n;
        const total = unit * BigInt(quantity);
        yield { sku, quantity, totalCents: quantity >= 10 ? (total * 9n) / 10n : total };
      }
    },
    audit(event) {
      audits++;
      log(`[server] audit recorded: ${event.actor} ${event.action} (total ${audits})`);
    },
  };

  const v2: CatalogV2Handlers = {
    lookup: ({ sku }) => {
      const item = find(sku);
      return {
        sku: item.sku,
        name: item.name,
        price: { currency: "EUR", amountMinor: item.priceCents },
        inStock: 7,
      };
    },
  };
  return { v1, v2, priceOf: (sku) => items.get(sku)?.priceCents };
}
