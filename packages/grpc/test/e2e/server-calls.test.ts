import { connect as http2Connect, type IncomingHttpHeaders, type OutgoingHttpHeaders } from "node:http2";
import { connect as netConnect } from "node:net";
import {
  bidiStreaming,
  Code,
  createClient,
  createServer,
  defineService,
  rawBytes,
  type Server,
  serverStreaming,
  type WeftError,
} from "@weft/core";
import { afterEach, describe, expect, it } from "vitest";
import { createGrpcHandler, createGrpcTransport, listenGrpc } from "../../src/index.ts";
import { encodeEnvelope } from "../../src/protocol/envelope.ts";
import { CatalogService, catalogImpl, deferred, newObserved } from "./fixtures.ts";

const Bulk = defineService("test.Bulk", {
  /** Reads one request, stops reading, then answers until told the client has sent everything. */
  drop: bidiStreaming(rawBytes, rawBytes),
  /** Endless 64 KiB messages. */
  fill: serverStreaming(rawBytes, rawBytes),
});

/** One raw HTTP/2 request: the response headers, and the trailers once the stream ends. */
function request(address: string, headers: OutgoingHttpHeaders, body: Uint8Array) {
  const session = http2Connect(`http://${address}`);
  session.on("error", () => {});
  const stream = session.request({ ":method": "POST", ...headers });
  stream.on("error", () => {});
  stream.end(body);
  const response = new Promise<IncomingHttpHeaders>((resolve) => stream.once("response", resolve));
  const trailers = new Promise<IncomingHttpHeaders>((resolve) => {
    let t: IncomingHttpHeaders = {};
    stream.once("trailers", (h: IncomingHttpHeaders) => {
      t = h;
    });
    stream.once("close", () => resolve(t));
  });
  stream.resume();
  return { session, stream, response, trailers };
}

describe("gRPC server calls", () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function start(register: (server: Server) => void) {
    const server = createServer({ onError: () => {} });
    register(server);
    const listener = await listenGrpc(server);
    cleanups.push(async () => {
      await server.shutdown({ timeoutMs: 1000 });
      await listener.close();
    });
    return { server, listener, address: `127.0.0.1:${listener.port}` };
  }

  it("a request stream the handler abandoned keeps flowing: the client sends all of it while responses go on", async () => {
    const allSent = deferred();
    const { address } = await start((server) =>
      server.register(Bulk, {
        async *drop(requests) {
          for await (const _ of requests) break; // one message, then the handler stops reading
          yield new Uint8Array([1]);
          await allSent.promise; // far more than the 1 MiB high-water mark arrives meanwhile
          yield new Uint8Array([2]);
        },
        async *fill() {},
      }),
    );
    const transport = createGrpcTransport({ address });
    cleanups.push(() => transport.close());
    async function* requests() {
      for (let i = 0; i < 64; i++) yield new Uint8Array(64 * 1024).fill(i); // 4 MiB
      allSent.resolve();
    }
    const replies: number[] = [];
    for await (const r of createClient(Bulk, transport).drop(requests())) replies.push(r[0]!);
    expect(replies).toEqual([1, 2]);
  });

  it("close() resolves after the shutdown even though a client stopped reading its stream", async () => {
    const started = deferred();
    const server = createServer({ onError: () => {} });
    server.register(Bulk, {
      async *drop() {},
      async *fill() {
        started.resolve();
        for (;;) yield new Uint8Array(64 * 1024);
      },
    });
    const listener = await listenGrpc(server);
    // a client that sends its request and never reads: flow control holds the server's writes, and
    // the final status can never be delivered
    const { session } = (() => {
      const s = http2Connect(`http://127.0.0.1:${listener.port}`);
      s.on("error", () => {});
      const stream = s.request({
        ":method": "POST",
        ":path": "/test.Bulk/fill",
        "content-type": "application/grpc",
        te: "trailers",
      });
      stream.on("error", () => {});
      stream.end(encodeEnvelope(new Uint8Array(0)));
      return { session: s };
    })();
    cleanups.push(() => session.destroy());
    await started.promise;
    expect(await server.shutdown({ timeoutMs: 100 })).toEqual({ cancelled: 1 });
    await listener.close(); // hung forever before: the stream, the session and the port stayed open
    expect(session.destroyed || session.closed).toBe(true);
  });

  it("a call cut off by the shutdown timeout gets its status at once, not when the server has stopped", async () => {
    const observed = newObserved();
    const server = createServer({ onError: () => {} });
    server.register(CatalogService, catalogImpl(observed));
    const tcp = await server.listen();
    const listener = await listenGrpc(server);
    cleanups.push(async () => {
      observed.releaseFeed.resolve();
      await listener.close();
    });
    // a Weft TCP peer that never closes its side holds the server in `draining` past the timeout
    const idle = netConnect({ port: tcp.port, host: "127.0.0.1", allowHalfOpen: true });
    idle.on("error", () => {});
    cleanups.push(() => {
      idle.destroy();
    });
    const transport = createGrpcTransport({ address: `127.0.0.1:${listener.port}` });
    cleanups.push(() => transport.close());
    const feed = createClient(CatalogService, transport).watchPrices({ sku: "A", ticks: -1 });
    const outcome = (async () => {
      try {
        for await (const _ of feed);
        return { error: undefined, state: server.state };
      } catch (e) {
        return { error: e as WeftError, state: server.state };
      }
    })();
    await observed.feedStarted.promise;
    const shutdown = server.shutdown({ timeoutMs: 200 });
    const { error, state } = await outcome;
    expect(error?.code).toBe(Code.UNAVAILABLE);
    expect(state).toBe("draining");
    expect(await shutdown).toEqual({ cancelled: 1 });
  });

  it("handlers hold no subscription on the server; a listener drops its own once closed", async () => {
    const server = createServer({ onError: () => {} });
    let subscribed = 0;
    const subscribe = server.onStateChange.bind(server);
    server.onStateChange = (listener) => {
      subscribed++;
      const off = subscribe(listener);
      return () => {
        subscribed--;
        off();
      };
    };
    for (let i = 0; i < 3; i++) createGrpcHandler(server);
    expect(subscribed).toBe(0);
    const listener = await listenGrpc(server);
    expect(subscribed).toBe(1);
    await listener.close();
    expect(subscribed).toBe(0);
    await server.shutdown();
  });

  it("a handler sees the same request headers over gRPC and Connect (core's mapping); unsendable metadata is dropped", async () => {
    const seen: Array<Record<string, string>> = [];
    const { address } = await start((server) =>
      server.register(CatalogService, {
        ...catalogImpl(newObserved()),
        lookup({ sku }, ctx) {
          seen.push(ctx.requestHeaders.toJSON());
          ctx.responseHeaders.set("x-ok", "1");
          ctx.responseHeaders.set("x-bad", "line\nbreak");
          ctx.responseTrailers.set("x-wide", "€ is not latin1");
          ctx.responseTrailers.set("x-trailer", "t");
          return { sku, name: sku, priceCents: 1n };
        },
      }),
    );
    const common = {
      ":path": "/catalog.v1.Catalog/Lookup",
      "user-agent": "test-agent",
      accept: "*/*",
      "x-tenant": "acme",
      "x-blob-bin": "AAE=",
      traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    };
    const grpc = request(
      address,
      { ...common, "content-type": "application/grpc", te: "trailers", "grpc-timeout": "5S" },
      encodeEnvelope(new Uint8Array([0x0a, 0x01, 0x41])), // LookupRequest { sku: "A" }
    );
    const connect = request(
      address,
      { ...common, "content-type": "application/json", "connect-protocol-version": "1" },
      Buffer.from(JSON.stringify({ sku: "A" })),
    );
    cleanups.push(() => {
      grpc.session.destroy();
      connect.session.destroy();
    });
    const [gh, gt, ch] = await Promise.all([grpc.response, grpc.trailers, connect.response]);
    expect(gt["grpc-status"]).toBe("0");
    expect(ch[":status"]).toBe(200);
    const expected = {
      "user-agent": "test-agent",
      "x-tenant": "acme",
      "x-blob-bin": "AAE=",
      traceparent: common.traceparent,
    };
    expect(seen).toEqual([expected, expected]);
    for (const h of [gh, ch]) {
      expect(h["x-ok"]).toBe("1");
      expect(h["x-bad"]).toBeUndefined();
    }
    expect(gt["x-trailer"]).toBe("t");
    expect(gt["x-wide"]).toBeUndefined();
  });

  it("gRPC-web: an unknown method's grpc-message is percent-encoded as gRPC says, not as a URI component", async () => {
    const { address } = await start(() => {});
    const response = await fetch(`http://${address}/nope.v1.Nope/Call`, {
      method: "POST",
      headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" },
      body: new Uint8Array(encodeEnvelope(new Uint8Array(0))),
    });
    await response.arrayBuffer();
    expect(response.headers.get("grpc-status")).toBe(String(Code.UNIMPLEMENTED));
    expect(response.headers.get("grpc-message")).toBe("unknown method /nope.v1.Nope/Call");
  });
});
