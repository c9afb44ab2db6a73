import { create, type DescMethod, type MessageInitShape, setExtension } from "@bufbuild/protobuf";
import { MethodOptionsSchema } from "@bufbuild/protobuf/wkt";
import { ConfigError, createServer, type MethodInfo, protoService } from "@weft/core";
import { describe, expect, it } from "vitest";
import * as v1 from "../test/gen/orders/v1/orders_pb.ts";
import { PlanCache } from "./field-plan.ts";
import { http } from "./gen/google/api/annotations_pb.ts";
import { CustomHttpPatternSchema, HttpRuleSchema } from "./gen/google/api/http_pb.ts";

type Rule = MessageInitShape<typeof HttpRuleSchema>;

import { createRestHandler } from "./rest-handler.ts";
import { compileRoutes } from "./routes.ts";

const service = protoService(v1.Orders);
const base = [...Object.values(service.methods)][0]!;

/** GetOrder (or another method) with its google.api.http rule replaced. */
function methodWith(rule: Rule, proto: DescMethod = v1.Orders.method.getOrder): MethodInfo {
  const options = create(MethodOptionsSchema);
  setExtension(options, http, create(HttpRuleSchema, rule));
  return {
    service,
    name: proto.localName,
    path: `/orders.v1.Orders/${proto.name}`,
    kind: proto.methodKind === "unary" ? "unary" : proto.methodKind,
    input: base.input,
    output: base.output,
    idempotent: false,
    proto: { ...proto, proto: { ...proto.proto, options } } as DescMethod,
  };
}

const compile = (...methods: MethodInfo[]) => compileRoutes(methods, new PlanCache());

describe("compileRoutes", () => {
  it("compiles a rule, its additional bindings, and custom methods", () => {
    const routes = compile(
      methodWith({
        pattern: { case: "get", value: "/v1/orders/{order_id}" },
        additionalBindings: [
          create(HttpRuleSchema, {
            pattern: { case: "custom", value: { kind: "search", path: "/v1/orders/{order_id}" } },
          }),
        ],
      }),
    );
    expect(routes.map((r) => [r.httpMethod, r.pattern, r.operationId, r.version])).toEqual([
      ["GET", "/v1/orders/{order_id}", "orders.v1.Orders.GetOrder", "1"],
      ["SEARCH", "/v1/orders/{order_id}", "orders.v1.Orders.GetOrder_1", "1"],
    ]);
  });

  it("rejects bad rules at construction with a ConfigError naming the method", () => {
    const cases: [Rule, RegExp][] = [
      [{ pattern: { case: undefined } }, /a pattern/],
      [{ pattern: { case: "get", value: "/v1/{order_id" } }, /a path template/],
      [{ pattern: { case: "get", value: "/v1/{nope}" } }, /a field of orders.v1.GetOrderRequest/],
      [{ pattern: { case: "get", value: "/v1/{order_id}" }, body: "nope" }, /body.*a top-level field/],
      [{ pattern: { case: "get", value: "/v1/{order_id}" }, responseBody: "nope" }, /response_body/],
      [
        {
          pattern: {
            case: "custom",
            value: create(CustomHttpPatternSchema, { kind: "NOT A METHOD", path: "/v1/x" }),
          },
        },
        /custom HTTP method/,
      ],
    ];
    for (const [rule, message] of cases) {
      const attempt = () => compile(methodWith(rule));
      expect(attempt).toThrow(ConfigError);
      expect(attempt).toThrow(/google.api.http of orders.v1.Orders.GetOrder/);
      expect(attempt).toThrow(message);
    }
  });

  it("rejects path variables bound to fields a string cannot set", () => {
    const list = methodWith({ pattern: { case: "get", value: "/v1/{tags}" } }, v1.Orders.method.listOrders);
    expect(() => compile(list)).toThrow(/singular scalar/);
    const message = methodWith(
      { pattern: { case: "get", value: "/v1/{filter}" } },
      v1.Orders.method.listOrders,
    );
    expect(() => compile(message)).toThrow(/singular scalar/);
  });

  it("rejects two methods declaring the same route", () => {
    const a = methodWith({ pattern: { case: "get", value: "/v1/orders/{order_id}" } });
    const b = methodWith(
      { pattern: { case: "get", value: "/v1/orders/{order_id}" } },
      v1.Orders.method.getOrderStatus,
    );
    expect(() => compile(a, b)).toThrow(/a route no other method declares/);
  });

  it("rejects annotated streaming methods", () => {
    const m = {
      ...methodWith({ pattern: { case: "get", value: "/v1/orders/{order_id}" } }),
      kind: "server_streaming" as const,
    };
    expect(() => compile(m)).toThrow(/streaming is not served over REST/);
  });
});

describe("createRestHandler options", () => {
  const server = createServer();
  server.register(service, new Proxy({}, { get: () => () => ({}) }) as never);

  it("validates them at construction", () => {
    expect(() => createRestHandler(server, { maxBodyBytes: 0 })).toThrow(/maxBodyBytes/);
    expect(() => createRestHandler(server, { basePath: "api" })).toThrow(/basePath/);
    expect(() => createRestHandler(server, { basePath: "/api/" })).toThrow(/basePath/);
    expect(() => createRestHandler(server, { timeoutHeader: "bad header" })).toThrow(/timeoutHeader/);
    expect(() => createRestHandler(server, { cors: { allowOrigins: "*", allowCredentials: true } })).toThrow(
      /allowCredentials/,
    );
    expect(createRestHandler(server, { basePath: "/" }).routes.length).toBeGreaterThan(10);
  });
});
