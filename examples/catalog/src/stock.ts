/**
 * The catalog's messaging contract, shared by the servers and their users: the events the servers
 * publish, the stock reservation command their queue group handles, the price quote they answer
 * over the broker, and the `Stock` RPC service that accepts reservations (RPC then event) or streams
 * their acknowledgement and outcome (RPC stream ack).
 */
import { defineService, messageType, serverStreaming, unary } from "@weft/core";
import { type Accepted, destination } from "@weft/messaging";

/** An item was looked up (published by the server that served the lookup). */
export interface ItemViewed {
  readonly sku: string;
  readonly by: string;
}
export const itemViewed = destination<ItemViewed>("catalog.item.viewed");

/** Reserve `quantity` of `sku`: a command one member of the servers' queue group handles. */
export interface Reserve {
  readonly sku: string;
  readonly quantity: number;
}
export const reserveStock = destination<Reserve>("catalog.stock.reserve", { kind: "command" });

/** A reservation's outcome: which server reserved it. */
export interface Reserved {
  readonly sku: string;
  readonly quantity: number;
  readonly by: string;
}
/** Stock was reserved (published by the server that reserved it, for whoever listens). */
export const stockReserved = destination<Reserved>("catalog.stock.reserved");

/** A price for `quantity` of `sku`, asked over the broker (request/reply). */
export const priceQuote = destination<Reserve>("catalog.price.quote");
export interface PriceQuoted {
  readonly totalCents: number;
  readonly by: string;
}

/** A message of `ReserveStream`: the acknowledgement first, then the outcome. */
export type ReserveStep = { readonly accepted: string } | { readonly reserved: Reserved };

export const Stock = defineService("catalog.v1.Stock", {
  /** Accepts a reservation at once; the outcome arrives as an event where `weft-outcome-to` says. */
  reserve: unary(messageType<Reserve>(), messageType<Accepted>()),
  /** The acknowledgement, then the outcome, on one stream. */
  reserveStream: serverStreaming(messageType<Reserve>(), messageType<ReserveStep>()),
});

/** The servers' queue group (for commands and quotes) and where their dead letters go. */
export const CATALOG_GROUP = "catalog";
export const CATALOG_DEAD_LETTERS = `dlq.${CATALOG_GROUP}`;
