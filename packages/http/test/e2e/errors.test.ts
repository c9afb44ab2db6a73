import { Agent, request } from "node:http";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, codeName, type Interceptor, WeftError } from "@weft/core";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { httpStatusOf } from "../../src/index.ts";
import { call, type Gateway, startGateway } from "../fixtures.ts";
import { MoneySchema } from "../gen/orders/v1/orders_pb.ts";

let gw: Gateway;
beforeAll(async () => {
  gw = await startGateway({ rest: { maxBodyBytes: 64 * 1024 } });
});
afterAll(() => gw.close());

const EXPECTED_STATUS: Record<string, number> = {
  CANCELLED: 499,
  UNKNOWN: 500,
  INVALID_ARGUMENT: 400,
  DEADLINE_EXCEEDED: 504,
  NOT_FOUND: 404,
  ALREADY_EXISTS: 409,
  PERMISSION_DENIED: 403,
  RESOURCE_EXHAUSTED: 429,
  FAILED_PRECONDITION: 400,
  ABORTED: 409,
  OUT_OF_RANGE: 400,
  UNIMPLEMENTED: 501,
  INTERNAL: 500,
  UNAVAILABLE: 503,
  DATA_LOSS: 500,
  UNAUTHENTICATED: 401,
};

describe("Weft code → HTTP status", () => {
  it("maps every code like grpc-gateway, with a JSON body carrying code, status, reason, message and details", async () => {
    for (let code = 1; code <= 16; code++) {
      const name = codeName(code);
      const r = await call(`${gw.url}/v1/fail`, {
        method: "POST",
        json: { code, reason: `R_${name}`, message: `failed with ${name}` },
      });
      expect(r.status, name).toBe(EXPECTED_STATUS[name]);
      expect(httpStatusOf(code as Code)).toBe(EXPECTED_STATUS[name]);
      expect(r.headers.get("content-type")).toBe("application/json");
      expect(r.headers.get("retry-after-ms"), "error metadata becomes headers").toBe("250");
      expect(r.body).toEqual({
        code,
        status: name,
        reason: `R_${name}`,
        message: `failed with ${name}`,
        details: [{ type: "orders.v1.Hint", value: { tries: 3 } }],
      });
    }
  });

  it("an unexpected handler error is a 500 INTERNAL that leaks nothing, and is reported", async () => {
    const r = await call(`${gw.url}/v1/fail`, { method: "POST", json: { unexpected: true } });
    expect(r.status).toBe(500);
    expect(r.body).toEqual({
      code: Code.INTERNAL,
      status: "INTERNAL",
      reason: "HANDLER_ERROR",
      message: "internal error",
      details: [],
    });
    expect(r.text).not.toContain("password");
    expect(gw.errors.some((e) => String(e).includes("password"))).toBe(true);
  });
});

describe("error details", () => {
  it("decodes protobuf details of known types to JSON, and sends others as base64", async () => {
    const money = toBinary(MoneySchema, create(MoneySchema, { currency: "EUR", amountMinor: 5n }));
    const failing: Interceptor = () => async () => {
      throw new WeftError(Code.FAILED_PRECONDITION, "no", {
        details: [
          { type: "orders.v1.Money", value: money },
          { type: "x.Unknown", value: new Uint8Array([1, 2, 3]) },
        ],
      });
    };
    const g = await startGateway({ interceptors: [failing] });
    try {
      const r = await call(`${g.url}/v1/orders/1`);
      expect(r.status).toBe(400);
      expect((r.body as { details: unknown }).details).toEqual([
        { type: "orders.v1.Money", value: { currency: "EUR", amountMinor: "5" } },
        { type: "x.Unknown", bytes: "AQID" },
      ]);
    } finally {
      await g.close();
    }
  });
});

describe("bad requests are 400/413/415 naming what is wrong, never 500", () => {
  const post = (
    path: string,
    body: string,
    headers: Record<string, string> = { "content-type": "application/json" },
  ) => call(`${gw.url}${path}`, { method: "POST", body, headers });

  it("malformed JSON: 400 naming the position", async () => {
    const cases: [string, string][] = [
      ['{"id": "1",}', "line 1 column 12 (position 11)"],
      ['{"id": tru}', "line 1 column 8 (position 7)"],
      ['{\n  "id": "1"\n  "customer": "x"\n}', "line 3 column 3 (position 16)"],
      ['{"id": "1"', "line 1 column 11 (position 10)"],
      ["[1, 2", "line 1 column 6 (position 5)"],
      ['{"id": "1"} x', "line 1 column 13 (position 12)"],
    ];
    for (const [body, where] of cases) {
      const r = await post("/v1/orders", body);
      expect(r.status, body).toBe(400);
      expect(r.body, body).toMatchObject({ code: 3, status: "INVALID_ARGUMENT", reason: "MALFORMED_JSON" });
      expect((r.body as { message: string }).message, body).toContain(where);
    }
  });

  it("invalid UTF-8 is a 400", async () => {
    const res = await fetch(`${gw.url}/v1/orders`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: new Uint8Array([0x7b, 0x22, 0xff, 0x22, 0x7d]),
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({
      reason: "MALFORMED_JSON",
      message: "request body is not valid UTF-8",
    });
  });

  it("a wrong type: 400 naming the field path", async () => {
    const cases: [string, unknown, string][] = [
      ["/v1/orders", { totalCents: "abc" }, "order.total_cents"],
      ["/v1/orders", { items: [{ sku: "a" }, { quantity: "many" }] }, "order.items[1].quantity"],
      ["/v1/orders", { labels: { a: 1 } }, 'order.labels["a"]'],
      ["/v1/orders", { priceByQuantity: { x: {} } }, 'order.price_by_quantity["x"]'],
      [
        "/v1/orders",
        { priceByQuantity: { "2": { amountMinor: true } } },
        'order.price_by_quantity["2"].amount_minor',
      ],
      ["/v1/orders", { state: "ORDER_STATE_NOPE", createdAt: "yesterday" }, "order.created_at"],
      ["/v1/orders", { shipping: "Oslo" }, "order.shipping"],
      ["/v1/orders", { tags: "a" }, "order.tags"],
      ["/v1/orders", { gift: "yes" }, "order.gift"],
      ["/v1/orders", { weightKg: "heavy" }, "order.weight_kg"],
      ["/v1/orders", { revision: -1 }, "order.revision"],
      ["/v1/orders", { signature: "!!" }, "order.signature"],
      ["/v1/orders", { handlingTime: "soon" }, "order.handling_time"],
      ["/v1/orders", { priority: "high" }, "order.priority"],
      ["/v1/orders", { cardToken: "a", invoiceRef: "b" }, "payment"],
      ["/v1/orders/1:cancel", { reason: 5 }, "reason"],
    ];
    for (const [path, body, field] of cases) {
      const r = await post(path, JSON.stringify(body));
      expect(r.status, JSON.stringify(body)).toBe(400);
      const b = r.body as { message: string; reason: string; details: { value: unknown }[] };
      expect(b.message, JSON.stringify(body)).toContain(`invalid value for field ${field}:`);
      expect(b.details[0]!.value).toMatchObject({ fieldViolations: [{ field }] });
    }
  });

  it("a body that is not an object where the message is the body", async () => {
    const r = await call(`${gw.url}/v1/orders/1`, { method: "PUT", json: [1, 2] });
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ reason: "INVALID_BODY" });
  });

  it("bad path and query values name the field", async () => {
    const q = await call(`${gw.url}/v1/orders?include_archived=maybe`);
    expect([q.status, (q.body as { message: string }).message]).toEqual([
      400,
      'invalid value for field include_archived: expected a boolean (true or false), got "maybe"',
    ]);
    const n = await call(`${gw.url}/v1/orders?page_size=ten`);
    expect(n.status).toBe(400);
    expect((n.body as { message: string }).message).toContain("field page_size");
    const nested = await call(`${gw.url}/v1/orders?min_weight_kg=x`);
    expect((nested.body as { message: string }).message).toContain("field min_weight_kg");
    const twice = await call(`${gw.url}/v1/orders?page_size=1&pageSize=2`);
    expect(twice.status).toBe(400);
    expect((twice.body as { message: string }).message).toContain("more than once");
    const message = await call(`${gw.url}/v1/orders?filter=x`);
    expect(message.status).toBe(400);
    expect((message.body as { message: string }).message).toContain("field filter:");
    const badPath = await call(`${gw.url}/v1/orders/%E0%A4%A`);
    expect(badPath.status).toBe(400);
    expect(badPath.body).toMatchObject({ reason: "MALFORMED_PATH" });
  });

  it("a body that is not JSON is 415", async () => {
    const r = await post("/v1/orders", "id=1", { "content-type": "application/x-www-form-urlencoded" });
    expect(r.status).toBe(415);
    expect(r.body).toMatchObject({ code: 3, reason: "UNSUPPORTED_MEDIA_TYPE" });
    const plain = await fetch(`${gw.url}/v1/orders`, { method: "POST", body: "{}" }); // text/plain
    expect(plain.status).toBe(415);
    const vendor = await post("/v1/orders", "{}", { "content-type": "application/vnd.weft+json; version=1" });
    expect(vendor.status).toBe(200);
  });

  it("an oversize body with a Content-Length is 413 before it is read", async () => {
    const r = await post("/v1/orders", JSON.stringify({ customer: "x".repeat(70 * 1024) }));
    expect(r.status).toBe(413);
    expect(r.body).toMatchObject({
      code: Code.RESOURCE_EXHAUSTED,
      status: "RESOURCE_EXHAUSTED",
      reason: "MESSAGE_TOO_LARGE",
    });
  });

  it("an oversize streamed body (no Content-Length) is 413 once it passes the limit", async () => {
    const chunk = new TextEncoder().encode(`"${"y".repeat(16 * 1024)}`);
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent++ < 8) controller.enqueue(chunk);
        else controller.close();
      },
    });
    const res = await fetch(`${gw.url}/v1/orders`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
      duplex: "half",
    } as RequestInit);
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ reason: "MESSAGE_TOO_LARGE" });
  });

  it("a 413 closes the connection, so the rest of an oversize body is never read; the client carries on", async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const send = (body: string) =>
      new Promise<{ status: number; reused: boolean }>((resolve, reject) => {
        const req = request(
          `${gw.url}/v1/orders`,
          { method: "POST", agent, headers: { "content-type": "application/json" } },
          (res) => {
            res.resume();
            res.on("end", () => resolve({ status: res.statusCode ?? 0, reused: req.reusedSocket }));
          },
        );
        req.on("error", reject);
        req.end(body);
      });
    try {
      expect(await send(`{"customer":"${"z".repeat(100 * 1024)}"}`)).toEqual({ status: 413, reused: false });
      expect(await send('{"id":"2"}')).toEqual({ status: 200, reused: false });
      expect(await send('{"id":"3"}')).toEqual({ status: 200, reused: true });
    } finally {
      agent.destroy();
    }
  });

  it("a client still sending an oversize body reads the 413, chunked or with a Content-Length, every time", async () => {
    /** Sends 12 MiB (more than socket buffers hold) in 64 KiB chunks as fast as the socket takes them, whatever the server answers. */
    const sendBig = (declared: boolean) =>
      new Promise<{ status: number; body: string; sendError: string | undefined }>((resolve) => {
        const chunk = Buffer.alloc(64 * 1024, 0x61);
        const total = 192;
        const headers: Record<string, string> = { "content-type": "application/json" };
        if (declared) headers["content-length"] = String(total * chunk.length + 2);
        let answer: { status: number; body: string } | undefined;
        let sendError: string | undefined;
        let sending = true;
        const settle = () => {
          if (answer !== undefined && !sending) resolve({ ...answer, sendError });
        };
        const req = request(`${gw.url}/v1/orders`, { method: "POST", headers, agent: false }, (res) => {
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (c: string) => {
            body += c;
          });
          res.on("end", () => {
            answer = { status: res.statusCode ?? 0, body };
            settle();
          });
        });
        // writing failed (EPIPE, ECONNRESET): what the client saw before the server drained the body
        req.on("error", (e: NodeJS.ErrnoException) => {
          sendError ??= e.code ?? e.message;
          sending = false;
          answer ??= { status: 0, body: "" };
          settle();
        });
        // or the client stopped on its own: node ends a request whose answer said `connection: close`
        req.on("close", () => {
          sending = false;
          settle();
        });
        let sent = 0;
        const pump = () => {
          if (sent === 0) req.write('"');
          while (sent < total) {
            sent++;
            if (!req.write(chunk)) {
              req.once("drain", pump);
              return;
            }
          }
          req.end('"');
        };
        pump();
      });
    for (let i = 0; i < 3; i++) {
      for (const declared of [false, true]) {
        const r = await sendBig(declared);
        expect(r.sendError).toBeUndefined();
        expect(r.status).toBe(413);
        expect(JSON.parse(r.body)).toMatchObject({ reason: "MESSAGE_TOO_LARGE" });
      }
    }
  });

  it("arbitrary bodies never produce a 500", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.string(),
          fc.json(),
          fc.jsonValue().map((v) => JSON.stringify({ items: v, labels: v, totalCents: v, createdAt: v })),
          fc.jsonValue().map((v) => JSON.stringify(v)),
        ),
        async (body) => {
          const r = await post("/v1/orders", body);
          expect([200, 400]).toContain(r.status);
          expect(r.headers.get("content-type")).toBe("application/json");
        },
      ),
      { numRuns: 150 },
    );
    expect(gw.errors.filter((e) => !String(e).includes("password"))).toEqual([]);
  });
});

describe("strict mode (ignoreUnknownFields: false)", () => {
  it("rejects unknown JSON fields and query parameters by name", async () => {
    const g = await startGateway({ rest: { ignoreUnknownFields: false } });
    try {
      const body = await call(`${g.url}/v1/orders`, { method: "POST", json: { id: "1", colour: "red" } });
      expect(body.status).toBe(400);
      expect((body.body as { message: string }).message).toContain("order.colour");
      const query = await call(`${g.url}/v1/orders?colour=red`);
      expect(query.status).toBe(400);
      expect((query.body as { message: string }).message).toContain("field colour: unknown query parameter");
    } finally {
      await g.close();
    }
  });
});
