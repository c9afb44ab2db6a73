import { create, type DescService } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  Code,
  createServer,
  type HandlerContext,
  type Interceptor,
  protoService,
  type Server,
  type ServerOptions,
  type ServiceDef,
  type ServiceImpl,
  WeftError,
} from "@weft/core";
// The example system's contracts (examples/catalog), as generated there.
import * as catalogV1 from "../../../examples/catalog/src/gen/catalog/v1/catalog_pb.ts";
import * as catalogV2 from "../../../examples/catalog/src/gen/catalog/v2/catalog_pb.ts";
import { listenRest, type RestListener, type RestListenOptions } from "../src/index.ts";
import * as next from "./gen/next/orders/v1/orders_pb.ts";
import * as v1 from "./gen/orders/v1/orders_pb.ts";
import * as v2 from "./gen/orders/v2/orders_pb.ts";

/** A promise with its resolve exposed: lets a test wait for an event instead of sleeping. */
export interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
}

export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((res) => {
    resolve = res;
  });
  return { promise, resolve };
}

export const OrdersV1 = protoService(v1.Orders);
export const OrdersV2 = protoService(v2.Orders);
export const OrdersNext = protoService(next.Orders);
export const CatalogV1 = protoService(catalogV1.Catalog);
export const CatalogV2 = protoService(catalogV2.Catalog);

/** Hooks a test can use to watch the handlers. */
export interface Probe {
  /** Resolved when `Hang` starts, with its context. */
  hangStarted: Deferred<HandlerContext>;
  /** Resolved when `Hang`'s signal aborts, with the reason. */
  hangAborted: Deferred<unknown>;
  /** Resolved when the one-way `Notify` runs, with its request. */
  notified: Deferred<unknown>;
  /** Requests the handlers saw, by method name. */
  seen: Map<string, unknown>;
}

export function probe(): Probe {
  return { hangStarted: deferred(), hangAborted: deferred(), notified: deferred(), seen: new Map() };
}

/** orders.v1.Orders built from either the v1 or the v1.1 ("next") descriptors: the same handlers. */
function ordersImpl(p: Probe, schemas: typeof v1 | typeof next) {
  const seen = (name: string, req: unknown) => {
    p.seen.set(name, req);
  };
  const order = (id: string) =>
    create(schemas.OrderSchema, {
      id,
      customer: "ada",
      totalCents: 9_007_199_254_740_993n,
      state: v1.OrderState.OPEN,
      createdAt: timestampFromMs(Date.UTC(2024, 0, 2, 3, 4, 5)),
      items: [{ sku: "A-1", quantity: 2, priceCents: 125n }],
    });
  return {
    getOrder(req: { orderId: string }) {
      seen("getOrder", req);
      if (req.orderId === "missing") {
        throw new WeftError(Code.NOT_FOUND, "no order missing", {
          reason: "ORDER_NOT_FOUND",
          details: [{ type: "orders.v1.Missing", value: { id: req.orderId } }],
        });
      }
      return order(req.orderId);
    },
    listOrders(req: v1.ListOrdersRequest) {
      seen("listOrders", req);
      return { orders: [order("1")], nextPageToken: "p2", echo: req };
    },
    createOrder(req: { order?: unknown; requestId: string }) {
      seen("createOrder", req);
      return req.order ?? {};
    },
    updateOrder(req: { order?: unknown; updateMask?: { paths: string[] } }) {
      seen("updateOrder", req);
      return req.order ?? {};
    },
    replaceOrder(req: unknown) {
      seen("replaceOrder", req);
      return req;
    },
    deleteOrder(req: unknown) {
      seen("deleteOrder", req);
      return {};
    },
    cancelOrder(req: { orderId: string; reason: string }) {
      seen("cancelOrder", req);
      return { id: req.orderId, note: req.reason };
    },
    getOrderStatus(req: { orderId: string }) {
      seen("getOrderStatus", req);
      return { orderId: req.orderId, status: req.orderId === "new" ? 0 : v1.OrderState.SHIPPED };
    },
    getShelfItem(req: { name: string }) {
      seen("getShelfItem", req);
      return { name: req.name };
    },
    getFile(req: { path: string }) {
      seen("getFile", req);
      return { path: req.path };
    },
    fail(req: v1.FailRequest, ctx: HandlerContext) {
      seen("fail", req);
      ctx.responseTrailers.set("x-failed-in", "handler");
      if (req.unexpected) throw new Error("secret database password in this message");
      throw new WeftError(req.code as Code, req.message, {
        reason: req.reason,
        metadata: { "retry-after-ms": "250" },
        details: [{ type: "orders.v1.Hint", value: { tries: 3 } }],
      });
    },
    inspect(_req: unknown, ctx: HandlerContext) {
      ctx.responseHeaders.set("x-handler", "inspect");
      ctx.responseTrailers.set("x-checksum", "abc123");
      return {
        headers: Object.fromEntries(ctx.requestHeaders),
        timeRemainingMs: BigInt(ctx.timeRemaining() ?? -1),
        peer: ctx.peer ?? "",
      };
    },
    async hang(_req: unknown, ctx: HandlerContext) {
      p.hangStarted.resolve(ctx);
      const reason = await new Promise<unknown>((resolve) => {
        if (ctx.signal.aborted) resolve(ctx.signal.reason);
        ctx.signal.addEventListener("abort", () => resolve(ctx.signal.reason), { once: true });
      });
      p.hangAborted.resolve(reason);
      throw reason;
    },
    notify(req: unknown) {
      p.notified.resolve(req);
    },
    secret() {
      return {};
    },
  };
}

export function registerOrders(server: Server, p: Probe, variant: "v1" | "next" = "v1"): void {
  // one implementation serves both builds; the message types differ only by the v1.1 additions
  if (variant === "v1")
    server.register(OrdersV1, ordersImpl(p, v1) as unknown as ServiceImpl<typeof OrdersV1>);
  else server.register(OrdersNext, ordersImpl(p, next) as unknown as ServiceImpl<typeof OrdersNext>);
}

export function registerOrdersV2(server: Server): void {
  server.register(OrdersV2, {
    getOrder: ({ orderId }) => ({
      id: orderId,
      customerId: "c-7",
      total: { currency: "EUR", amountMinor: 1250n },
    }),
    createOrder: (order) => order,
    getCustomer: ({ customerId }) => ({ id: customerId, name: "Ada" }),
  });
}

const items = new Map<string, { sku: string; name: string; priceCents: bigint }>([
  ["A-100", { sku: "A-100", name: "Loom shuttle", priceCents: 1250n }],
]);

export function registerCatalog(server: Server): void {
  server.register(CatalogV1, {
    lookup({ sku }) {
      const item = items.get(sku);
      if (item === undefined)
        throw new WeftError(Code.NOT_FOUND, `no item ${sku}`, { reason: "ITEM_NOT_FOUND" });
      return item;
    },
    listItems: ({ namePrefix }) => ({
      items: [...items.values()].filter((i) => i.name.startsWith(namePrefix)),
    }),
    putItem({ item }) {
      if (item === undefined) throw new WeftError(Code.INVALID_ARGUMENT, "item is required");
      items.set(item.sku, item);
      return item;
    },
    async *watchPrices() {},
    importItems: async () => ({ imported: 0 }),
    async *quote() {},
    audit: () => ({}),
  });
  server.register(CatalogV2, {
    lookup({ sku }) {
      const item = items.get(sku);
      if (item === undefined)
        throw new WeftError(Code.NOT_FOUND, `no item ${sku}`, { reason: "ITEM_NOT_FOUND" });
      return { sku, name: item.name, price: { currency: "EUR", amountMinor: item.priceCents }, inStock: 3 };
    },
  });
}

export interface Gateway {
  readonly server: Server;
  readonly rest: RestListener;
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly probe: Probe;
  readonly errors: unknown[];
  close(): Promise<void>;
}

/** A Weft server with orders v1 + v2 and the example catalog, and its REST gateway on a free port. */
export async function startGateway(
  options: {
    rest?: RestListenOptions;
    server?: ServerOptions;
    interceptors?: Interceptor[];
    register?: (server: Server, p: Probe) => void;
  } = {},
): Promise<Gateway> {
  const errors: unknown[] = [];
  const server = createServer({
    onError: (e) => errors.push(e),
    ...options.server,
    ...(options.interceptors === undefined ? {} : { interceptors: options.interceptors }),
  });
  const p = probe();
  if (options.register !== undefined) options.register(server, p);
  else {
    registerOrders(server, p);
    registerOrdersV2(server);
    registerCatalog(server);
  }
  const rest = await listenRest(server, { host: "127.0.0.1", port: 0, ...options.rest });
  return {
    server,
    rest,
    url: `http://127.0.0.1:${rest.port}`,
    probe: p,
    errors,
    async close() {
      await rest.close();
      await server.shutdown({ timeoutMs: 1000 });
    },
  };
}

/** JSON of a response, with its status and headers. */
export async function call(
  url: string,
  init: RequestInit & { json?: unknown } = {},
): Promise<{ status: number; headers: Headers; body: unknown; text: string }> {
  const { json, ...rest } = init;
  const headers = new Headers(rest.headers);
  if (json !== undefined) headers.set("content-type", "application/json");
  const res = await fetch(url, {
    ...rest,
    headers,
    ...(json !== undefined ? { body: JSON.stringify(json) } : {}),
  });
  const text = await res.text();
  let body: unknown;
  try {
    body = text === "" ? undefined : JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: res.status, headers: res.headers, body, text };
}

export type { DescService, ServiceDef };
