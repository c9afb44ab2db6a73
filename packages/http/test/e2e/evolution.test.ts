import { create, fromJson, type JsonValue, toJson } from "@bufbuild/protobuf";
import { afterEach, describe, expect, it } from "vitest";
import { call, type Gateway, registerOrders, startGateway } from "../fixtures.ts";
import * as next from "../gen/next/orders/v1/orders_pb.ts";
import * as v1 from "../gen/orders/v1/orders_pb.ts";

// The same orders.v1 package, twice: v1, and v1.1 which added `Order.gift_message` and
// `ORDER_STATE_RETURNED`. A client built from one talks JSON to a server built from the other.

const gateways: Gateway[] = [];
afterEach(async () => {
  await Promise.all(gateways.splice(0).map((g) => g.close()));
});
async function serverBuiltFrom(variant: "v1" | "next"): Promise<Gateway> {
  const g = await startGateway({ register: (server, p) => registerOrders(server, p, variant) });
  gateways.push(g);
  return g;
}

describe("API evolution over REST", () => {
  it("a v1 client talks to a v1.1 server: missing fields take defaults, new ones are ignored by the client", async () => {
    const g = await serverBuiltFrom("next");
    // what a v1 client sends: it does not know gift_message or ORDER_STATE_RETURNED
    const sent = toJson(
      v1.OrderSchema,
      create(v1.OrderSchema, { id: "1", customer: "ada", state: v1.OrderState.SHIPPED }),
    );
    const r = await call(`${g.url}/v1/orders`, { method: "POST", json: sent });
    expect(r.status).toBe(200);
    const seen = g.probe.seen.get("createOrder") as { order: next.Order };
    expect(seen.order.giftMessage).toBe(""); // the v1.1 server sees the default
    expect(seen.order.state).toBe(next.OrderState.SHIPPED);

    // the v1.1 server answers with the new field and the new enum value: the v1 client reads past them
    const r2 = await call(`${g.url}/v1/orders`, {
      method: "POST",
      json: { id: "2", giftMessage: "happy birthday", state: "ORDER_STATE_RETURNED" },
    });
    expect(r2.body).toEqual({ id: "2", giftMessage: "happy birthday", state: "ORDER_STATE_RETURNED" });
    const read = fromJson(v1.OrderSchema, r2.body as JsonValue, { ignoreUnknownFields: true });
    expect(read.id).toBe("2");
    expect(read.state).toBe(v1.OrderState.UNSPECIFIED); // unknown enum value: the default
    expect("giftMessage" in read).toBe(false);
  });

  it("a v1.1 client talks to a v1 server: the server ignores what it does not know", async () => {
    const g = await serverBuiltFrom("v1");
    const sent = toJson(
      next.OrderSchema,
      create(next.OrderSchema, {
        id: "3",
        customer: "bob",
        giftMessage: "hi",
        state: next.OrderState.RETURNED,
      }),
    );
    expect(sent).toMatchObject({ giftMessage: "hi", state: "ORDER_STATE_RETURNED" });
    const r = await call(`${g.url}/v1/orders`, { method: "POST", json: sent });
    expect(r.status).toBe(200);
    const seen = g.probe.seen.get("createOrder") as { order: v1.Order };
    expect(seen.order).toMatchObject({ id: "3", customer: "bob", state: v1.OrderState.UNSPECIFIED });
    // the v1 server's answer lacks gift_message: the v1.1 client reads the default
    const read = fromJson(next.OrderSchema, r.body as JsonValue, { ignoreUnknownFields: true });
    expect(read).toMatchObject({
      id: "3",
      customer: "bob",
      giftMessage: "",
      state: next.OrderState.UNSPECIFIED,
    });

    // a new enum value in the query string is ignored too, and a new query parameter as well
    const q = await call(`${g.url}/v1/orders?state=ORDER_STATE_RETURNED&gift_message=x&page_size=2`);
    expect(q.status).toBe(200);
    expect((q.body as { echo: unknown }).echo).toEqual({ pageSize: 2 });
  });

  it("a v1.1 server answers a v1 client's GET with fields it can ignore", async () => {
    const g = await serverBuiltFrom("next");
    const r = await call(`${g.url}/v1/orders/9`);
    expect(r.status).toBe(200);
    const read = fromJson(v1.OrderSchema, r.body as JsonValue, { ignoreUnknownFields: true });
    expect(read).toMatchObject({ id: "9", customer: "ada", totalCents: 9_007_199_254_740_993n });
  });
});
