import { Validator } from "@seriousme/openapi-schema-validator";
import { Code, type Interceptor, WeftError } from "@weft/core";
import { Ajv2020 } from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, type Gateway, startGateway } from "../fixtures.ts";

type Doc = {
  openapi: string;
  info: { title: string; version: string };
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, Schema> };
};
type Operation = {
  operationId: string;
  parameters: { name?: string; in?: string; required?: boolean; schema?: Schema; $ref?: string }[];
  requestBody?: { content: Record<string, { schema: Schema }> };
  responses: Record<string, { content?: Record<string, { schema: Schema }> }>;
};
type Schema = Record<string, unknown>;

let gw: Gateway;
let doc: Doc;
beforeAll(async () => {
  gw = await startGateway({ rest: { openapi: { info: { title: "Orders", version: "1.2.3" } } } });
  const r = await call(`${gw.url}/openapi.json`);
  expect(r.status).toBe(200);
  expect(r.headers.get("content-type")).toBe("application/json");
  doc = r.body as Doc;
});
afterAll(() => gw.close());

/** Validates JSON against a component of the served document with a JSON Schema 2020-12 validator. */
function schemaValidator() {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats.default(ajv);
  for (const f of ["int32", "int64", "uint32", "uint64", "float", "double"]) ajv.addFormat(f, true);
  ajv.addSchema({ $id: "openapi.json", components: doc.components });
  return (schema: Schema, value: unknown) => {
    const validate = ajv.compile({ $id: `check-${Math.random()}`, ...rebase(schema) });
    const ok = validate(value);
    return ok ? [] : (validate.errors ?? []);
  };
}

/** Points the document's local `#/components/...` references at the added document. */
function rebase(schema: unknown): Schema {
  return JSON.parse(JSON.stringify(schema).replaceAll('"#/components/', '"openapi.json#/components/'));
}

describe("the OpenAPI 3.1 document at /openapi.json", () => {
  it("is valid per an OpenAPI 3.1 validator", async () => {
    const validator = new Validator();
    const result = await validator.validate(doc);
    expect(result.errors).toBeUndefined();
    expect(result.valid).toBe(true);
    expect(validator.version).toBe("3.1");
    expect(doc.info).toMatchObject({ title: "Orders", version: "1.2.3" });
  });

  it("has every route, with its path parameters named once per path shape", () => {
    expect(Object.keys(doc.paths).sort()).toEqual(
      [
        "/v1/files/{path}",
        "/v1/fail",
        "/v1/hang",
        "/v1/inspect",
        "/v1/items",
        "/v1/items/{sku}",
        "/v1/notifications",
        "/v1/orders",
        "/v1/orders/{orderId}",
        "/v1/orders/{orderId}/cancellation",
        "/v1/orders/{orderId}/status",
        "/v1/orders/{orderId}:cancel",
        "/v1/{name}",
        "/v2/customers/{customerId}",
        "/v2/items/{sku}",
        "/v2/orders",
        "/v2/orders/{orderId}",
      ].sort(),
    );
    const item = doc.paths["/v1/orders/{orderId}"]!;
    expect(Object.keys(item).sort()).toEqual(["delete", "get", "patch", "put"]);
    // PATCH binds order.id, PUT binds id: the same position, one name
    const patch = item.patch!.parameters.find((p) => p.in === "path")!;
    expect(patch).toMatchObject({ name: "orderId", required: true, schema: { type: "string" } });
    expect((patch as { description: string }).description).toContain("order.id");
    expect(item.get!.operationId).toBe("orders.v1.Orders.GetOrder");
    // catalog's PUT /v1/items/{item.sku} joins GET /v1/items/{sku}
    expect(Object.keys(doc.paths["/v1/items/{sku}"]!).sort()).toEqual(["get", "put"]);
    expect(doc.paths["/v1/orders/{orderId}/cancellation"]!.post!.operationId).toBe(
      "orders.v1.Orders.CancelOrder_1",
    );
  });

  it("describes query parameters with their proto3 JSON types, nested and repeated", () => {
    const params = doc.paths["/v1/orders"]!.get!.parameters;
    const byName = Object.fromEntries(params.filter((p) => p.in === "query").map((p) => [p.name, p]));
    expect(byName.pageSize!.schema).toEqual({ type: "integer", format: "int32" });
    expect(byName.minTotalCents!.schema).toMatchObject({ type: "string", format: "int64" });
    expect(byName.includeArchived!.schema).toEqual({ type: "boolean" });
    expect(byName.state!.schema).toEqual({ $ref: "#/components/schemas/orders.v1.OrderState" });
    expect(byName.tags).toMatchObject({
      style: "form",
      explode: true,
      schema: { type: "array", items: { type: "string" } },
    });
    expect(byName["filter.shipsTo.city"]!.schema).toEqual({ type: "string" });
    expect(byName.createdAfter!.schema).toEqual({ type: "string", format: "date-time" });
    expect(byName.shipped!.schema).toEqual({ type: ["boolean", "null"] });
    expect(byName.filter).toBeUndefined();
    // body fields and path-bound fields are not query parameters
    const create = doc.paths["/v1/orders"]!.post!;
    expect(create.parameters.map((p) => p.name ?? p.$ref)).toEqual([
      "requestId",
      "#/components/parameters/timeout",
    ]);
    expect(create.requestBody!.content["application/json"]!.schema).toEqual({
      $ref: "#/components/schemas/orders.v1.Order",
    });
    expect(doc.paths["/v1/orders/{orderId}"]!.put!.parameters.filter((p) => p.in === "query")).toEqual([]);
  });

  it("has component schemas for messages, enums, maps, repeated fields and well-known types", () => {
    const order = doc.components.schemas["orders.v1.Order"]!;
    expect(order.properties).toMatchObject({
      totalCents: { type: "string", format: "int64" },
      revision: { type: "string", format: "uint64" },
      items: { type: "array", items: { $ref: "#/components/schemas/orders.v1.LineItem" } },
      labels: { type: "object", additionalProperties: { type: "string" } },
      priceByQuantity: {
        type: "object",
        additionalProperties: { $ref: "#/components/schemas/orders.v1.Money" },
        propertyNames: { pattern: "^-?[0-9]+$" },
      },
      createdAt: { type: "string", format: "date-time" },
      handlingTime: { type: "string" },
      attributes: { type: "object" },
      priority: { type: ["integer", "null"] },
      signature: { type: "string", contentEncoding: "base64" },
      state: { $ref: "#/components/schemas/orders.v1.OrderState" },
    });
    expect(order.description).toContain("oneof payment");
    expect(doc.components.schemas["orders.v1.OrderState"]).toMatchObject({
      type: "string",
      enum: ["ORDER_STATE_UNSPECIFIED", "ORDER_STATE_OPEN", "ORDER_STATE_SHIPPED"],
    });
    expect(doc.components.schemas["weft.RestError"]).toMatchObject({
      required: ["code", "status", "reason", "message", "details"],
    });
  });

  it("documents responses: the message, response_body, errors, and the vendor media type", () => {
    const get = doc.paths["/v1/orders/{orderId}"]!.get!;
    expect(Object.keys(get.responses["200"]!.content!)).toEqual([
      "application/json",
      "application/vnd.weft+json; version=1",
    ]);
    expect(get.responses.default!.content!["application/json"]!.schema).toEqual({
      $ref: "#/components/schemas/weft.RestError",
    });
    const status = doc.paths["/v1/orders/{orderId}/status"]!.get!;
    expect(status.responses["200"]!.content!["application/json"]!.schema).toEqual({
      $ref: "#/components/schemas/orders.v1.OrderState",
    });
  });

  it("real responses validate against the schemas it documents", async () => {
    const check = schemaValidator();
    const responseSchema = (path: string, method: string) =>
      doc.paths[path]![method]!.responses["200"]!.content!["application/json"]!.schema;
    const order = await call(`${gw.url}/v1/orders/42`);
    expect(check(responseSchema("/v1/orders/{orderId}", "get"), order.body)).toEqual([]);
    const list = await call(`${gw.url}/v1/orders?tags=a&state=ORDER_STATE_OPEN&min_total_cents=5`);
    expect(check(responseSchema("/v1/orders", "get"), list.body)).toEqual([]);
    const full = await call(`${gw.url}/v1/orders/1`, {
      method: "PUT",
      json: {
        labels: { a: "b" },
        priceByQuantity: { "10": { currency: "EUR", amountMinor: "99" } },
        handlingTime: "2s",
        attributes: { x: null },
        priority: 3,
        signature: "AQID",
        revision: "7",
        cardToken: "t",
        note: "n",
      },
    });
    expect(full.status).toBe(200);
    expect(check(responseSchema("/v1/orders/{orderId}", "put"), full.body)).toEqual([]);
    const v2 = await call(`${gw.url}/v2/orders/1`);
    expect(check(responseSchema("/v2/orders/{orderId}", "get"), v2.body)).toEqual([]);
    const error = await call(`${gw.url}/v1/orders/missing`);
    expect(check(doc.components.schemas["weft.RestError"]!, error.body)).toEqual([]);
    // and a wrong shape does not
    expect(check(responseSchema("/v1/orders/{orderId}", "get"), { totalCents: 5 })).not.toEqual([]);
  });

  it("the error schema describes both detail forms, { type, value } and { type, bytes }, and nothing else", async () => {
    const check = schemaValidator();
    const errorSchema = doc.components.schemas["weft.RestError"]!;
    const failing: Interceptor = () => async () => {
      throw new WeftError(Code.FAILED_PRECONDITION, "no", {
        details: [
          { type: "x.Json", value: { a: 1 } },
          { type: "x.Unknown", value: new Uint8Array([1, 2, 3]) },
          { type: "x.Empty", value: undefined as unknown as null },
        ],
      });
    };
    const g = await startGateway({ interceptors: [failing] });
    try {
      const r = await call(`${g.url}/v1/orders/1`);
      expect((r.body as { details: unknown }).details).toEqual([
        { type: "x.Json", value: { a: 1 } },
        { type: "x.Unknown", bytes: "AQID" },
        { type: "x.Empty", value: null },
      ]);
      expect(check(errorSchema, r.body)).toEqual([]);
    } finally {
      await g.close();
    }
    const body = (detail: unknown) => ({
      code: 9,
      status: "FAILED_PRECONDITION",
      reason: "",
      message: "",
      details: [detail],
    });
    expect(check(errorSchema, body({ type: "x", value: null }))).toEqual([]);
    expect(check(errorSchema, body({ type: "x", bytes: "AQID" }))).toEqual([]);
    expect(check(errorSchema, body({ type: "x" }))).not.toEqual([]);
    expect(check(errorSchema, body({ type: "x", value: 1, bytes: "AQID" }))).not.toEqual([]);
    expect(check(errorSchema, body({ type: "x", json: 1 }))).not.toEqual([]);
  });

  it("can be turned off or moved", async () => {
    const g = await startGateway({ rest: { openapi: false } });
    const h = await startGateway({ rest: { openapi: { path: "/docs/api.json" }, basePath: "/api" } });
    try {
      expect((await call(`${g.url}/openapi.json`)).status).toBe(404);
      expect((await call(`${h.url}/api/docs/api.json`)).body).toMatchObject({ openapi: "3.1.0" });
      expect((await call(`${h.url}/api/docs/api.json`, { method: "POST" })).status).toBe(405);
    } finally {
      await g.close();
      await h.close();
    }
  });
});
