/**
 * The demo's messaging scene, played against the three catalog servers over the broker
 * (`WEFT_BROKER`, default the brokerless `direct` one): the servers publish `catalog.item.viewed` for
 * lookups; 30 `catalog.stock.reserve` commands are shared by their queue group, each outcome
 * published as an event to the shop's group (two instances here, either handles one); the `Stock`
 * RPC acknowledges a reservation at once and its outcome follows as an event (RPC then event); its
 * stream variant sends the acknowledgement, then the outcome (RPC stream ack); a price is asked over
 * the broker (request/reply); a reservation of an unknown item fails, its error outcome reaches the
 * shop and the command is dead-lettered. Printed as counts; takes well under a second.
 */
import { randomUUID } from "node:crypto";
import { createClient, createTcpTransport, SILENT_LOGGER, type WeftError } from "@weft/core";
import {
  type Broker,
  createMessenger,
  destination,
  type Messenger,
  outcomeError,
  outcomeHeaders,
  type ReceivedMessage,
  workQueue,
} from "@weft/messaging";
import { createCatalogClient } from "./gen/catalog/v1/catalog_weft.ts";
import {
  CATALOG_DEAD_LETTERS,
  CATALOG_GROUP,
  itemViewed,
  type PriceQuoted,
  priceQuote,
  type Reserve,
  type Reserved,
  reserveStock,
  Stock,
  stockReserved,
} from "./stock.ts";

/** Where the shop wants its reservations' outcomes: an event destination its group subscribes to. */
const shopReservations = destination<Reserved>("shop.stock.reserved");
const COMMANDS = 30;

/**
 * A subject in each namespace only the demo uses (`catalog.*`, `shop.*`), for `removeDemoStreams`;
 * not `dlq.*`, which other applications' dead letters share.
 */
export const DEMO_SUBJECTS: readonly string[] = [reserveStock.name, shopReservations.name];
const WAIT_MS = 10_000;

/** A catalog server as the scene reaches it. */
export interface SceneServer {
  readonly id: string;
  readonly port: number;
}

/** One outcome event, as the shop instance that handled it saw it. */
interface Outcome {
  readonly shop: string;
  readonly correlationId: string | undefined;
  readonly body: Reserved | null;
  readonly error: WeftError | undefined;
}

/**
 * Plays the scene on `broker` (closed at the end) against `servers`, printing through `say`;
 * resolves with true when every count came out as expected.
 */
export async function messagingScene(
  say: (line: string) => void,
  broker: Broker,
  servers: readonly SceneServer[],
): Promise<boolean> {
  const messengers: Messenger[] = [];
  const messenger = (): Messenger => {
    const m = createMessenger({ broker, logger: SILENT_LOGGER });
    messengers.push(m);
    return m;
  };
  const transports = servers.map((s) => createTcpTransport({ address: `127.0.0.1:${s.port}` }));
  // a persistent broker keeps a group (and what is published for it) between runs: this run's own
  const run = broker.features.persistent ? `-${randomUUID().slice(0, 8)}` : "";
  const group = (name: string) => `${name}${run}`;
  const waits = new Waits();
  try {
    // the listeners: analytics counts the servers' events, ops the dead letters, two shop instances
    // share the reservations' outcomes
    const analytics = messenger();
    const viewedBy = new Tally();
    const reservedEvents = new Tally();
    await analytics.subscribe(itemViewed, (m) => waits.bump(viewedBy, m.body.by), {
      group: group("analytics"),
    });
    await analytics.subscribe(stockReserved, (m) => waits.bump(reservedEvents, m.body.by), {
      group: group("analytics"),
    });
    const letters: ReceivedMessage<Reserve>[] = [];
    await analytics.subscribe(destination<Reserve>(CATALOG_DEAD_LETTERS), (m) => waits.push(letters, m), {
      group: group("ops"),
    });
    const outcomes: Outcome[] = [];
    const shops = [messenger(), messenger()];
    for (const [i, shop] of shops.entries())
      await shop.subscribe(
        shopReservations,
        (m) =>
          waits.push(outcomes, {
            shop: `shop-${i + 1}`,
            correlationId: m.correlationId,
            body: m.body,
            error: outcomeError(m),
          }),
        { group: group("shop") },
      );
    say(
      `[messaging] broker ${broker.name}; groups: ${CATALOG_GROUP} (the 3 servers), shop (2 instances), analytics, ops${run === "" ? "" : ` (durable: this run's have the suffix ${run})`}`,
    );

    // events: every lookup publishes catalog.item.viewed from the server that served it
    for (const transport of transports) {
      const catalog = createCatalogClient(transport, { timeoutMs: 2_000 });
      for (const sku of ["A-100", "B-200", "A-100"]) await catalog.lookup({ sku });
    }
    const lookups = 3 * servers.length;
    await waits.until(() => viewedBy.total === lookups, "the item.viewed events");
    say(
      `[messaging] ${lookups} lookups -> ${viewedBy.total} catalog.item.viewed events, consumed by analytics: ${viewedBy}`,
    );

    // commands: the shop publishes reservations; the servers' queue group shares them
    const orders = workQueue<Reserve, Reserved>(shops[0]!, reserveStock);
    for (let i = 0; i < COMMANDS; i++)
      await orders.accept(
        { sku: i % 2 === 0 ? "A-100" : "B-200", quantity: 1 + (i % 3) },
        { outcomeTo: shopReservations.name, correlationId: `order-${i}` },
      );
    await waits.until(() => outcomes.length === COMMANDS, "the reservations' outcomes");
    const handledBy = new Tally();
    const handledAt = new Tally();
    for (const o of outcomes) {
      handledBy.add(o.body?.by ?? "?");
      handledAt.add(o.shop);
    }
    say(
      `[messaging] ${COMMANDS} catalog.stock.reserve commands to queue group ${CATALOG_GROUP}: handled by ${handledBy}`,
    );
    const orderIds = new Set(outcomes.map((o) => o.correlationId));
    say(
      `[messaging] ${outcomes.length} outcome events to group shop (${orderIds.size} orders, one each): handled by ${handledAt}`,
    );

    // RPC then event: the acknowledgement at once, the outcome later to any shop instance
    const stock = createClient(Stock, transports[0]!, { timeoutMs: 2_000 });
    const started = performance.now();
    const ack = await stock.reserve(
      { sku: "A-100", quantity: 2 },
      { headers: outcomeHeaders(shopReservations, { correlationId: "order-rpc" }) },
    );
    const ackMs = performance.now() - started;
    await waits.until(() => outcomes.some((o) => o.correlationId === "order-rpc"), "the RPC's outcome event");
    const viaRpc = outcomes.find((o) => o.correlationId === "order-rpc")!;
    say(
      `[messaging] RPC then event: Stock/Reserve on ${servers[0]!.id} acknowledged ${ack.correlationId} in ${ackMs.toFixed(1)} ms; outcome event: ${viaRpc.body?.quantity} x ${viaRpc.body?.sku} reserved by ${viaRpc.body?.by}, handled by ${viaRpc.shop}`,
    );

    // RPC stream ack: the acknowledgement, then the outcome, on one stream
    const streamServer = servers[1] ?? servers[0]!;
    const streaming = createClient(Stock, transports[servers.indexOf(streamServer)]!, { timeoutMs: 2_000 });
    const steps: string[] = [];
    for await (const step of streaming.reserveStream({ sku: "B-200", quantity: 1 }))
      steps.push(
        "accepted" in step
          ? "accepted"
          : `${step.reserved.quantity} x ${step.reserved.sku} reserved by ${step.reserved.by}`,
      );
    say(
      `[messaging] RPC stream ack: Stock/ReserveStream on ${streamServer.id} -> 1st message ${steps[0]}, 2nd ${steps[1]}`,
    );

    // request/reply over the broker
    const quote = await shops[0]!.request<Reserve, PriceQuoted>(
      priceQuote,
      { sku: "A-100", quantity: 3 },
      {
        timeoutMs: 2_000,
      },
    );
    say(
      `[messaging] request/reply: quote 3 x A-100 -> ${(quote.totalCents / 100).toFixed(2)} EUR from ${quote.by}`,
    );

    // a reservation that cannot succeed: an error outcome for the shop, a dead letter for ops
    await orders.accept(
      { sku: "Z-999", quantity: 1 },
      { outcomeTo: shopReservations.name, correlationId: "order-bad" },
    );
    await waits.until(
      () => letters.length === 1 && outcomes.some((o) => o.correlationId === "order-bad"),
      "the dead letter and the error outcome",
    );
    const bad = outcomes.find((o) => o.correlationId === "order-bad")!;
    const letter = letters[0]!;
    say(
      `[messaging] order-bad (Z-999): error outcome ${bad.error?.reason} "${bad.error?.rawMessage}"; dead letters on ${CATALOG_DEAD_LETTERS}: ${letters.length} (${letter.headers.get("weft-dlq-reason")} after ${letter.headers.get("weft-dlq-attempts")} deliveries)`,
    );

    const reservedOk = COMMANDS + 2;
    await waits.until(() => reservedEvents.total === reservedOk, "the stock.reserved events");
    const errors = outcomes.filter((o) => o.error !== undefined).length;
    say(
      `[messaging] totals: events consumed by analytics ${viewedBy.total + reservedEvents.total} (${viewedBy.total} item.viewed, ${reservedEvents.total} stock.reserved); outcome events ${outcomes.length} (${outcomes.length - errors} reserved, ${errors} failed); dead letters ${letters.length}`,
    );
    return (
      new Set(outcomes.map((o) => o.correlationId)).size === COMMANDS + 2 &&
      outcomes.length === COMMANDS + 2 &&
      steps.length === 2 &&
      errors === 1 &&
      letters.length === 1
    );
  } catch (error) {
    say(`[messaging] failed: ${error instanceof Error ? error.message : String(error)}`);
    return false;
  } finally {
    waits.cancel();
    await Promise.all(messengers.map((m) => m.close({ graceMs: 1_000 })));
    await Promise.all(transports.map((t) => t.close()));
    await broker.close();
  }
}

/** Counts per name, printed `a=1 b=2` in name order. */
class Tally {
  readonly counts = new Map<string, number>();
  total = 0;
  add(name: string): void {
    this.counts.set(name, (this.counts.get(name) ?? 0) + 1);
    this.total++;
  }
  toString(): string {
    return [...this.counts]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([name, n]) => `${name}=${n}`)
      .join(" ");
  }
}

/**
 * Waits for counts the handlers update: each update re-checks the condition being waited for, so
 * nothing polls; a wait gives up after `WAIT_MS` naming what it waited for.
 */
class Waits {
  #check: (() => void) | undefined;
  #timer: NodeJS.Timeout | undefined;

  bump(tally: Tally, name: string): void {
    tally.add(name);
    this.#check?.();
  }

  push<T>(list: T[], item: T): void {
    list.push(item);
    this.#check?.();
  }

  until(done: () => boolean, what: string): Promise<void> {
    if (done()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.#check = () => {
        if (!done()) return;
        this.cancel();
        resolve();
      };
      this.#timer = setTimeout(() => {
        this.cancel();
        reject(new Error(`timed out after ${WAIT_MS} ms waiting for ${what}`));
      }, WAIT_MS);
    });
  }

  cancel(): void {
    this.#check = undefined;
    clearTimeout(this.#timer);
  }
}
