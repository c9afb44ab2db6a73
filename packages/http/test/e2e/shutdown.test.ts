import { type IncomingMessage, request } from "node:http";
import { connect, type Socket } from "node:net";
import { Code, type Interceptor } from "@weft/core";
import { describe, expect, it } from "vitest";
import { CatalogV1, call, deferred, startGateway } from "../fixtures.ts";

/** Resolves with the response, or with the error when the connection is cut. */
function post(url: string, headers: Record<string, string>, partialBody: string) {
  return new Promise<IncomingMessage | Error>((resolve) => {
    const req = request(url, { method: "POST", agent: false, headers });
    req.on("response", resolve);
    req.on("error", resolve);
    req.write(partialBody); // and never end it
  });
}

async function text(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString();
}

describe("listenRest: close() always resolves", () => {
  it("a handler that ignores its signal: close({ timeoutMs }) cuts its connection and cancels the call", async () => {
    const entered = deferred<AbortSignal>();
    const never = new Promise<never>(() => {});
    const stall: Interceptor = () => async (c) => {
      entered.resolve(c.signal);
      return never; // ignores its signal
    };
    const g = await startGateway({ interceptors: [stall] });
    const pending = fetch(`${g.url}/v1/orders/1`).catch((e: unknown) => e);
    const signal = await entered.promise;
    await g.rest.close({ timeoutMs: 20 });
    expect(await pending).toBeInstanceOf(Error);
    expect(signal.reason).toMatchObject({ code: Code.CANCELLED, reason: "CANCELLED" });
    expect(g.server.inFlight).toBe(0);
    expect(await g.server.shutdown({ timeoutMs: 100 })).toEqual({ cancelled: 0 });
  });

  it("a client that never finishes its body: the drain's give-up answers it, and close() resolves", async () => {
    const g = await startGateway();
    const arrived = new Promise((resolve) => g.rest.server.once("request", resolve));
    const response = post(
      `${g.url}/v1/orders`,
      { "content-type": "application/json", "content-length": "1000" },
      '{"id": "1", ',
    );
    await arrived;
    expect(g.server.inFlight).toBe(1);
    expect(await g.server.shutdown({ timeoutMs: 30 })).toEqual({ cancelled: 1 });
    const res = await response;
    if (res instanceof Error) throw res;
    expect(res.statusCode).toBe(503);
    expect(res.headers.connection).toBe("close");
    expect(JSON.parse(await text(res))).toMatchObject({ code: Code.UNAVAILABLE, reason: "SHUTDOWN_TIMEOUT" });
    await g.rest.close();
    expect(g.rest.server.listening).toBe(false);
  });

  it("a client that never finishes its body, closed without a shutdown: close({ timeoutMs }) cuts it", async () => {
    const g = await startGateway();
    const arrived = new Promise((resolve) => g.rest.server.once("request", resolve));
    const response = post(
      `${g.url}/v1/orders`,
      { "content-type": "application/json", "content-length": "1000" },
      "{",
    );
    await arrived;
    await g.rest.close({ timeoutMs: 20 });
    expect(await response).toBeInstanceOf(Error);
    expect(g.server.inFlight).toBe(0);
    await g.server.shutdown({ timeoutMs: 100 });
  });

  it("once the Weft server has stopped, a client that never reads its response is cut after a short grace", async () => {
    const big = "x".repeat(24 << 20); // more than the socket buffers hold
    const g = await startGateway({
      register: (server) => {
        server.register(CatalogV1, {
          lookup: ({ sku }) => ({ sku, name: big, priceCents: 1n }),
          listItems: () => ({ items: [] }),
          putItem: ({ item }) => item ?? { sku: "", name: "", priceCents: 0n },
          async *watchPrices() {},
          importItems: async () => ({ imported: 0 }),
          async *quote() {},
          audit: () => ({}),
        });
      },
    });
    const socket: Socket = connect(g.rest.port, "127.0.0.1");
    socket.on("error", () => {});
    socket.pause(); // never reads
    const arrived = new Promise((resolve) => g.rest.server.once("request", resolve));
    socket.write("GET /v1/items/A-1 HTTP/1.1\r\nHost: x\r\n\r\n");
    await arrived;
    // the call is over for the Weft server (the response was handed to node:http), so it stops at once
    expect(await g.server.shutdown({ timeoutMs: 10_000 })).toEqual({ cancelled: 0 });
    expect(g.server.state).toBe("stopped");
    const closedAt = Date.now();
    await g.rest.close(); // not the 10 s default: the server has stopped
    expect(Date.now() - closedAt).toBeLessThan(5000);
    expect(g.rest.server.listening).toBe(false);
    socket.destroy();
  });
});

describe("listenRest: errors of the listening socket", () => {
  it("are reported to the Weft server's onError and do not stop the listener", async () => {
    const g = await startGateway();
    try {
      const error = Object.assign(new Error("accept EMFILE"), { code: "EMFILE" });
      expect(() => g.rest.server.emit("error", error)).not.toThrow();
      expect(g.errors).toContain(error);
      expect((await call(`${g.url}/v1/orders/1`)).status).toBe(200);
    } finally {
      await g.close();
    }
  });

  it("close() rejects a bad timeout as a configuration error", async () => {
    const g = await startGateway();
    try {
      expect(() => g.rest.close({ timeoutMs: -1 })).toThrow(/timeoutMs/);
    } finally {
      await g.close();
    }
  });
});
