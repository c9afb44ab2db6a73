/**
 * What a catalog server does over the broker: it publishes `catalog.item.viewed` for every lookup,
 * reserves stock for `catalog.stock.reserve` commands as a member of the servers' queue group
 * (publishing `catalog.stock.reserved` and the reservation's outcome), answers price quotes, and
 * serves the `Stock` RPC service that accepts reservations (RPC then event) or streams their
 * acknowledgement and outcome (RPC stream ack).
 */
import { Code, type Logger, type ServiceImpl, WeftError } from "@weft/core";
import { type Broker, createMessenger, workQueue } from "@weft/messaging";
import {
  CATALOG_GROUP,
  itemViewed,
  type PriceQuoted,
  priceQuote,
  type Reserve,
  type Reserved,
  reserveStock,
  type Stock,
  stockReserved,
} from "./stock.ts";

export interface CatalogMessaging {
  /** The `Stock` service's handlers, to register on the server. */
  readonly stock: ServiceImpl<typeof Stock>;
  /** Publishes `catalog.item.viewed` for `sku` (not awaited by the lookup; a failure is logged). */
  viewed(sku: string): void;
  /**
   * Drains the subscriptions: call it after `server.shutdown()`, so the reservations a `Stock` call
   * is still waiting for are finished first.
   */
  close(): Promise<void>;
}

/**
 * Starts the server's messaging on `broker` as instance `instance`; `priceOf` reads the catalog's
 * prices (`undefined`: no such SKU, the reservation fails with `NOT_FOUND` and, after its second
 * delivery, is dead-lettered with an error outcome).
 */
export async function startCatalogMessaging(
  broker: Broker,
  instance: string,
  priceOf: (sku: string) => bigint | undefined,
  logger: Logger,
): Promise<CatalogMessaging> {
  const messenger = createMessenger({ broker, logger });
  const reservations = workQueue<Reserve, Reserved>(messenger, reserveStock);
  const find = (sku: string): bigint => {
    const price = priceOf(sku);
    if (price === undefined)
      throw new WeftError(Code.NOT_FOUND, `no item ${sku}`, { reason: "ITEM_NOT_FOUND" });
    return price;
  };

  await reservations.work(
    async ({ body }) => {
      find(body.sku);
      const reserved: Reserved = { sku: body.sku, quantity: body.quantity, by: instance };
      await messenger.publish(stockReserved, reserved, { key: body.sku });
      return reserved;
    },
    { group: CATALOG_GROUP, maxDeliveries: 2, backoff: { initialDelayMs: 20, maxDelayMs: 50 } },
  );
  await messenger.subscribe(
    priceQuote,
    async (m) => {
      let quoted: PriceQuoted;
      try {
        quoted = { totalCents: Number(find(m.body.sku)) * m.body.quantity, by: instance };
      } catch (error) {
        return m.reply(null, { error });
      }
      await m.reply(quoted);
    },
    { group: CATALOG_GROUP },
  );

  return {
    stock: {
      reserve: (request) => reservations.accept(request),
      async *reserveStream(request) {
        const { accepted, outcome } = reservations.submit(request);
        yield { accepted: await accepted };
        yield { reserved: await outcome };
      },
    },
    viewed: (sku) => {
      messenger.publish(itemViewed, { sku, by: instance }).catch((error: unknown) => {
        logger.warn({ err: error, sku }, "catalog.item.viewed not published");
      });
    },
    close: () => messenger.close({ graceMs: 2_000 }),
  };
}
