// The README's "describe a service" block, verbatim (readme.test.ts checks it).
import { defineService, messageType, oneway, serverStreaming, unary } from "@weft/core";

export const Catalog = defineService("catalog.v1.Catalog", {
  lookup: unary(messageType<{ sku: string }>(), messageType<{ sku: string; priceCents: number }>()),
  watchPrices: serverStreaming(messageType<{ sku: string }>(), messageType<{ priceCents: number }>()),
  audit: oneway(messageType<{ action: string }>()),
});
