import { describe, expect, it } from "vitest";
import { openApiPath, parsePathTemplate, shapeOf } from "./path-template.ts";

describe("parsePathTemplate", () => {
  it("parses literals, variables, nested field paths, wildcards and a verb", () => {
    expect(parsePathTemplate("/v1/orders/{order_id}")).toEqual({
      source: "/v1/orders/{order_id}",
      segments: [{ kind: "literal", value: "v1" }, { kind: "literal", value: "orders" }, { kind: "*" }],
      verb: "",
      variables: [{ fieldPath: "order_id", start: 2, end: 3 }],
    });
    expect(parsePathTemplate("/v1/items/{item.sku}:cancel")).toMatchObject({
      verb: "cancel",
      variables: [{ fieldPath: "item.sku", start: 2, end: 3 }],
    });
    expect(parsePathTemplate("/v1/{name=shelves/*/items/*}")).toMatchObject({
      segments: [
        { kind: "literal", value: "v1" },
        { kind: "literal", value: "shelves" },
        { kind: "*" },
        { kind: "literal", value: "items" },
        { kind: "*" },
      ],
      variables: [{ fieldPath: "name", start: 1, end: 5 }],
    });
    expect(parsePathTemplate("/v1/files/{path=**}")).toMatchObject({
      segments: [{ kind: "literal", value: "v1" }, { kind: "literal", value: "files" }, { kind: "**" }],
      variables: [{ fieldPath: "path", start: 2, end: -1 }],
    });
    expect(parsePathTemplate("/v1/*/x/**:get").segments.map((s) => s.kind)).toEqual([
      "literal",
      "*",
      "literal",
      "**",
    ]);
    expect(parsePathTemplate("/v1/{a}/{b.c=x/*}").variables).toEqual([
      { fieldPath: "a", start: 1, end: 2 },
      { fieldPath: "b.c", start: 2, end: 4 },
    ]);
  });

  it("rejects malformed templates, saying where", () => {
    for (const bad of [
      "v1/orders",
      "/v1/{id",
      "/v1/{a={b}}",
      "/v1/{1x}",
      "/v1/**/x",
      "/v1//x",
      "/v1/{a}/{a}",
      "/v1/x:",
      "/v1/x:a/b",
      "/v1/{a=}",
      "/v1/x}",
    ]) {
      expect(() => parsePathTemplate(bad), bad).toThrow(/invalid path template .* at \d+: /);
    }
  });

  it("writes OpenAPI paths and shape keys", () => {
    const t = parsePathTemplate("/v1/{name=shelves/*/items/*}:get");
    expect(openApiPath(t)).toBe("/v1/{name}:get");
    expect(openApiPath(t, ["x"])).toBe("/v1/{x}:get");
    expect(openApiPath(parsePathTemplate("/v1/files/{path=**}"))).toBe("/v1/files/{path}");
    expect(shapeOf(parsePathTemplate("/v1/orders/{id}"))).toBe(
      shapeOf(parsePathTemplate("/v1/orders/{order.id}")),
    );
    expect(shapeOf(parsePathTemplate("/v1/orders/{id}"))).not.toBe(
      shapeOf(parsePathTemplate("/v1/orders/{id}:x")),
    );
  });
});
