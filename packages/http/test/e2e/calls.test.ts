import { getEventListeners } from "node:events";
import { Agent, createServer as createHttpServer, type IncomingMessage, request } from "node:http";
import type { Socket } from "node:net";
import { Code, createServer, currentCallContext, type Interceptor, WeftError } from "@weft/core";
import { afterEach, describe, expect, it } from "vitest";
import { createRestHandler } from "../../src/index.ts";
import { call, deferred, type Gateway, probe, registerOrders, startGateway } from "../fixtures.ts";

async function text(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString();
}

const gateways: Gateway[] = [];
afterEach(async () => {
  await Promise.all(gateways.splice(0).map((g) => g.close()));
});
async function start(options: Parameters<typeof startGateway>[0] = {}): Promise<Gateway> {
  const g = await startGateway(options);
  gateways.push(g);
  return g;
}

describe("the server's interceptors run on REST calls", () => {
  it("sees the method, the headers as metadata, the deadline and the call context; can set response headers", async () => {
    const seen: Record<string, unknown>[] = [];
    const observe: Interceptor = (next) => async (c) => {
      seen.push({
        path: c.method.path,
        side: c.side,
        serializer: c.serializer,
        tenant: c.headers.get("x-tenant"),
        hasDeadline: c.deadline !== undefined,
        contextPath: currentCallContext()?.path,
        message: c.stream ? undefined : c.message,
      });
      const result = await next(c);
      result.headers.set("x-observed", "yes");
      return result;
    };
    const g = await start({ interceptors: [observe] });
    const r = await call(`${g.url}/v1/orders/7`, {
      headers: { "x-tenant": "acme", "x-weft-timeout-ms": "5000" },
    });
    expect(r.status).toBe(200);
    expect(r.headers.get("x-observed")).toBe("yes");
    expect(seen).toEqual([
      {
        path: "/orders.v1.Orders/GetOrder",
        side: "server",
        serializer: "json",
        tenant: "acme",
        hasDeadline: true,
        contextPath: "/orders.v1.Orders/GetOrder",
        message: expect.objectContaining({ $typeName: "orders.v1.GetOrderRequest", orderId: "7" }),
      },
    ]);
  });

  it("an interceptor's error is the REST error", async () => {
    const auth: Interceptor = (next) => async (c) => {
      if (c.headers.get("authorization") !== "Bearer ok") {
        throw new WeftError(Code.UNAUTHENTICATED, "no credentials", { reason: "NO_TOKEN" });
      }
      return next(c);
    };
    const g = await start({ interceptors: [auth] });
    const denied = await call(`${g.url}/v1/orders/7`);
    expect(denied.status).toBe(401);
    expect(denied.body).toMatchObject({ code: 16, status: "UNAUTHENTICATED", reason: "NO_TOKEN" });
    expect((await call(`${g.url}/v1/orders/7`, { headers: { authorization: "Bearer ok" } })).status).toBe(
      200,
    );
  });
});

describe("deadlines", () => {
  it("the timeout header becomes the handler's deadline", async () => {
    const g = await start();
    const withBudget = await call(`${g.url}/v1/inspect`, { headers: { "x-weft-timeout-ms": "5000" } });
    const left = Number((withBudget.body as { timeRemainingMs: string }).timeRemainingMs);
    expect(left).toBeGreaterThan(0);
    expect(left).toBeLessThanOrEqual(5000);
    expect((withBudget.body as { headers: object }).headers).not.toHaveProperty("x-weft-timeout-ms");
    const without = await call(`${g.url}/v1/inspect`);
    expect((without.body as { timeRemainingMs: string }).timeRemainingMs).toBe("-1");
  });

  it("a handler still running at the deadline is answered 504 and its signal aborts", async () => {
    const g = await start();
    const r = await call(`${g.url}/v1/hang`, { headers: { "x-weft-timeout-ms": "30" } });
    expect(r.status).toBe(504);
    expect(r.body).toMatchObject({ code: Code.DEADLINE_EXCEEDED, status: "DEADLINE_EXCEEDED" });
    expect(await g.probe.hangAborted.promise).toMatchObject({ code: Code.DEADLINE_EXCEEDED });
  });

  it("the deadline is answered 504 even when the handler (or an interceptor) ignores its signal", async () => {
    const release = deferred();
    const stall: Interceptor = (next) => async (c) => {
      if (c.headers.get("x-stall") === "yes") await release.promise;
      return next(c);
    };
    const g = await start({ interceptors: [stall] });
    try {
      const r = await call(`${g.url}/v1/inspect`, {
        headers: { "x-stall": "yes", "x-weft-timeout-ms": "30" },
      });
      expect(r.status).toBe(504);
      expect(r.body).toMatchObject({ status: "DEADLINE_EXCEEDED" });
    } finally {
      release.resolve();
    }
  });

  it("a spent budget is 504 without running the handler; a malformed one is 400", async () => {
    const g = await start();
    const spent = await call(`${g.url}/v1/orders/1`, { headers: { "x-weft-timeout-ms": "0" } });
    expect(spent.status).toBe(504);
    expect(g.probe.seen.has("getOrder")).toBe(false);
    const bad = await call(`${g.url}/v1/orders/1`, { headers: { "x-weft-timeout-ms": "soon" } });
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ reason: "BAD_TIMEOUT" });
  });

  it("a 12-digit budget (about 31 years) is a deadline that does not fire at once", async () => {
    const release = deferred();
    const stall: Interceptor = (next) => async (c) => {
      if (c.headers.get("x-stall") === "yes") await release.promise;
      return next(c);
    };
    const g = await start({ interceptors: [stall] });
    let longAborted = false;
    void g.probe.hangAborted.promise.then(() => {
      longAborted = true;
    });
    const controller = new AbortController();
    const long = fetch(`${g.url}/v1/hang`, {
      headers: { "x-weft-timeout-ms": "999999999999" },
      signal: controller.signal,
    }).catch((e: unknown) => e);
    try {
      const ctx = await g.probe.hangStarted.promise;
      expect(ctx.timeRemaining()).toBeGreaterThan(999_000_000_000);
      // a call with a 30 ms budget runs out first: time has passed, the long one is still running
      const short = await call(`${g.url}/v1/inspect`, {
        headers: { "x-stall": "yes", "x-weft-timeout-ms": "30" },
      });
      expect(short.status).toBe(504);
      expect(ctx.signal.aborted).toBe(false);
      expect(longAborted).toBe(false);
    } finally {
      release.resolve();
      controller.abort();
    }
    await long;
    expect(await g.probe.hangAborted.promise).toMatchObject({ code: Code.CANCELLED });
  });

  it("a client that stalls mid-body is answered at the deadline (connection closed), not waited for", async () => {
    const g = await start();
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = request(`${g.url}/v1/orders`, {
        method: "POST",
        agent: false,
        headers: { "content-type": "application/json", "content-length": "100", "x-weft-timeout-ms": "50" },
      });
      req.on("response", resolve);
      req.on("error", reject);
      req.write('{"id": "1", '); // and nothing more
    });
    expect(res.statusCode).toBe(504);
    expect(res.headers.connection).toBe("close");
    const body = JSON.parse(await text(res)) as unknown;
    expect(body).toMatchObject({ code: Code.DEADLINE_EXCEEDED, reason: "DEADLINE_EXCEEDED" });
    expect(g.server.inFlight).toBe(0);
    expect(g.probe.seen.has("createOrder")).toBe(false);
  });

  it("the header name is an option", async () => {
    const g = await start({ rest: { timeoutHeader: "X-Budget" } });
    const r = await call(`${g.url}/v1/inspect`, { headers: { "x-budget": "4000" } });
    expect(Number((r.body as { timeRemainingMs: string }).timeRemainingMs)).toBeGreaterThan(0);
  });
});

describe("no listener outlives its request", () => {
  it("the call's signal, the request and the keep-alive socket carry no listener left by earlier requests", async () => {
    const signals: AbortSignal[] = [];
    const capture: Interceptor = (next) => (c) => {
      signals.push(c.signal);
      return next(c);
    };
    const g = await start({ interceptors: [capture] });
    const sockets: Socket[] = [];
    g.rest.server.on("connection", (s: Socket) => sockets.push(s));
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const listenerCounts = () => {
      const socket = sockets[0]!;
      return Object.fromEntries(socket.eventNames().map((n) => [String(n), socket.listenerCount(n)]));
    };
    try {
      const send = (method: string, path: string, body?: string) =>
        new Promise<number>((resolve, reject) => {
          const req = request(`${g.url}${path}`, {
            method,
            agent,
            headers: body === undefined ? {} : { "content-type": "application/json" },
          });
          req.on("response", (res) => {
            res.resume();
            res.on("end", () => resolve(res.statusCode ?? 0));
          });
          req.on("error", reject);
          req.end(body);
        });
      expect(await send("POST", "/v1/orders", '{"id":"1"}')).toBe(200);
      expect(await send("GET", "/v1/orders/1")).toBe(200);
      const after2 = listenerCounts();
      for (let i = 0; i < 5; i++) {
        expect(await send("POST", "/v1/orders", '{"id":"2"}')).toBe(200);
        expect(await send("GET", "/v1/orders/2")).toBe(200);
        expect(await send("POST", "/v1/orders", "{")).toBe(400);
      }
      expect(sockets).toHaveLength(1);
      expect(listenerCounts()).toEqual(after2);
      expect(signals).toHaveLength(12);
      for (const signal of signals) expect(getEventListeners(signal, "abort")).toEqual([]);
    } finally {
      agent.destroy();
    }
  });
});

describe("cancellation and one-way calls", () => {
  it("a client that goes away cancels the handler", async () => {
    const g = await start();
    const controller = new AbortController();
    const pending = fetch(`${g.url}/v1/hang`, { signal: controller.signal }).catch((e: unknown) => e);
    await g.probe.hangStarted.promise;
    controller.abort();
    expect(await g.probe.hangAborted.promise).toMatchObject({
      code: Code.CANCELLED,
      reason: "CANCELLED",
    });
    expect(await pending).toBeInstanceOf(Error);
  });

  it("a one-way method is answered 202 and then runs", async () => {
    const g = await start();
    const r = await call(`${g.url}/v1/notifications`, { method: "POST", json: { event: "shipped" } });
    expect(r.status).toBe(202);
    expect(r.body).toEqual({});
    expect(await g.probe.notified.promise).toMatchObject({ event: "shipped" });
  });
});

describe("shutdown", () => {
  it("listenRest stops accepting when the Weft server drains, and the drain waits for REST calls", async () => {
    const g = await startGateway();
    const controller = new AbortController();
    const inFlight = fetch(`${g.url}/v1/hang`, { signal: controller.signal }).catch((e: unknown) => e);
    await g.probe.hangStarted.promise;
    expect(g.server.inFlight).toBe(1);
    const shutdown = g.server.shutdown({ timeoutMs: 10_000 });
    expect(g.server.state).toBe("draining");
    await expect(fetch(`${g.url}/v1/orders/1`)).rejects.toThrow();
    controller.abort(); // the in-flight call ends; the drain can finish
    expect(await shutdown).toEqual({ cancelled: 0 });
    await inFlight;
    await g.rest.close();
  });

  it("a handler on a shared port answers 503 once shutdown began", async () => {
    const server = createServer({ onError: () => {} });
    registerOrders(server, probe());
    const rest = createRestHandler(server);
    const http = createHttpServer((req, res) => void rest(req, res));
    await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
    const { port } = http.address() as { port: number };
    try {
      await server.shutdown({ timeoutMs: 100 });
      const r = await call(`http://127.0.0.1:${port}/v1/orders/1`);
      expect(r.status).toBe(503);
      expect(r.body).toMatchObject({ code: Code.UNAVAILABLE, reason: "REFUSED_STREAM" });
    } finally {
      http.closeAllConnections();
      await new Promise((resolve) => http.close(resolve));
    }
  });

  it("close() releases the port", async () => {
    const g = await startGateway();
    await call(`${g.url}/v1/orders/1`); // leaves a keep-alive connection
    await g.rest.close();
    await expect(fetch(`${g.url}/v1/orders/1`)).rejects.toThrow();
    await g.server.shutdown({ timeoutMs: 100 });
  });
});
