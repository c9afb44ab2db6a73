import {
  bidiStreaming,
  clientStreaming,
  defineService,
  messageType,
  oneway,
  serverStreaming,
  unary,
} from "@weft/core";

export interface Item {
  sku: string;
  name: string;
  priceCents: number;
}
export interface PriceTick {
  sku: string;
  priceCents: number;
  seq: number;
}
export interface QuoteRequest {
  sku: string;
  quantity: number;
}
export interface Quote {
  sku: string;
  quantity: number;
  totalCents: number;
}
export interface AuditEvent {
  actor: string;
  action: string;
}

/** The catalog's contract, shared by server and client. */
export const Catalog = defineService("catalog.v1.Catalog", {
  /** Unary: one item by SKU; NOT_FOUND when there is none. */
  lookup: unary(messageType<{ sku: string }>(), messageType<Item>(), { idempotent: true }),
  /** Server streaming: a live price feed for one SKU. */
  watchPrices: serverStreaming(messageType<{ sku: string; ticks: number }>(), messageType<PriceTick>()),
  /** Client streaming: bulk import, answered once with a count. */
  importItems: clientStreaming(messageType<Item>(), messageType<{ imported: number }>()),
  /** Bidirectional: a quote for each request, as they come. */
  quote: bidiStreaming(messageType<QuoteRequest>(), messageType<Quote>()),
  /** One-way: fire-and-forget audit record; the server sends nothing back. */
  audit: oneway(messageType<AuditEvent>()),
});
