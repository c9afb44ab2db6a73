/**
 * What outside clients of gRPC-web and Connect hit: gRPC-web's text mode, deadlines that end the same
 * way on every protocol, and CORS for pages on other origins (the browser itself: `browser.test.ts`).
 */
import { once } from "node:events";
import { connect as http2Connect, constants as http2Constants } from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  type Client,
  Code as ConnectCode,
  ConnectError,
  createClient as createConnectClient,
} from "@connectrpc/connect";
import { compressionGzip, createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import {
  Code,
  ConfigError,
  createServer,
  type Interceptor,
  onCallEnd,
  type Server,
  WeftError,
} from "@weft/core";
import { deadlineWhileRunning } from "@weft/core/internal";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import {
  Catalog,
  type Item,
  ItemSchema,
  LookupRequestSchema,
  PriceTickSchema,
  WatchPricesRequestSchema,
} from "../../../../examples/catalog/src/gen/catalog/v1/catalog_pb.ts";
import { createGrpcHandler, type GrpcListener, listenGrpc } from "../../src/index.ts";
import { encodeEnvelope } from "../../src/protocol/envelope.ts";
import { decodeGrpcMessage } from "../../src/protocol/status.ts";
import {
  CatalogService,
  catalogImpl,
  type Deferred,
  deferred,
  fromRuns,
  type Harness,
  newObserved,
  startCatalog,
  webFrames,
} from "./fixtures.ts";

describe("gRPC-web text, deadlines and CORS over gRPC-web and Connect", () => {
  let h: Harness;
  let baseUrl: string;

  beforeAll(async () => {
    h = await startCatalog();
    baseUrl = `http://${h.address}`;
  });
  afterAll(async () => {
    await h.close();
  });

  const webText = (path: string, body: string, extra: Record<string, string> = {}) =>
    fetch(`${baseUrl}${path}`, {
      method: "POST",
      headers: {
        "content-type": "application/grpc-web-text",
        accept: "application/grpc-web-text",
        "x-grpc-web": "1",
        ...extra,
      },
      body,
    });

  it("application/grpc-web-text: a unary call, its request in two separately padded runs", async () => {
    const frame = encodeEnvelope(toBinary(LookupRequestSchema, create(LookupRequestSchema, { sku: "T-1" })));
    // the grpc-web client may send its body as several base64 runs, each padded
    const body = frame.subarray(0, 4).toString("base64") + frame.subarray(4).toString("base64");
    expect(body.slice(0, 8)).toMatch(/=/);
    const res = await webText("/catalog.v1.Catalog/Lookup", body);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/grpc-web-text+proto");
    const text = await res.text();
    expect(text).toMatch(/^[A-Za-z0-9+/=]+$/);
    const { messages, trailers } = webFrames(fromRuns(text));
    expect(trailers.get("grpc-status")).toBe("0");
    expect(messages).toHaveLength(1);
    const item: Item = fromBinary(ItemSchema, messages[0]!);
    expect(item).toMatchObject({ sku: "T-1", name: "item T-1", priceCents: 1250n });
  });

  it("application/grpc-web-text: server streaming, each chunk its own base64 run", async () => {
    const frame = encodeEnvelope(
      toBinary(WatchPricesRequestSchema, create(WatchPricesRequestSchema, { sku: "S", ticks: 3 })),
    );
    const res = await webText("/catalog.v1.Catalog/WatchPrices", frame.toString("base64"));
    const text = await res.text();
    const { messages, trailers } = webFrames(fromRuns(text));
    expect(messages.map((m) => fromBinary(PriceTickSchema, m).seq)).toEqual([1, 2, 3]);
    expect(trailers.get("grpc-status")).toBe("0");
    expect(trailers.get("x-ticks")).toBe("3");
  });

  it("application/grpc-web-text: a body that is not base64 is an error status, not a crash", async () => {
    const res = await webText("/catalog.v1.Catalog/Lookup", "not*base64!");
    const status =
      res.headers.get("grpc-status") ?? webFrames(fromRuns(await res.text())).trailers.get("grpc-status");
    expect(status).not.toBe("0");
    expect(status).toBeDefined();
  });

  /** The status message of one call whose deadline ends it on the server. */
  async function deadlineOverGrpc(ms: number): Promise<{ code: string; message: string }> {
    const session = http2Connect(baseUrl);
    try {
      const frame = encodeEnvelope(
        toBinary(LookupRequestSchema, create(LookupRequestSchema, { sku: "slow" })),
      );
      const stream = session.request({
        ":method": "POST",
        ":path": "/catalog.v1.Catalog/Lookup",
        "content-type": "application/grpc",
        te: "trailers",
        "grpc-timeout": `${ms}m`,
      });
      stream.end(frame);
      return await new Promise((resolve, reject) => {
        const pick = (hs: Record<string, unknown>) => {
          if (hs["grpc-status"] !== undefined)
            resolve({
              code: String(hs["grpc-status"]),
              message: decodeGrpcMessage(String(hs["grpc-message"])),
            });
        };
        stream.on("response", pick);
        stream.on("trailers", pick);
        stream.on("error", reject);
        stream.resume();
      });
    } finally {
      session.close();
    }
  }

  async function deadlineOverConnect(ms: number): Promise<{ code: string; message: string }> {
    const res = await fetch(`${baseUrl}/catalog.v1.Catalog/Lookup`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "connect-protocol-version": "1",
        "connect-timeout-ms": String(ms),
      },
      body: JSON.stringify({ sku: "slow" }),
    });
    const body = (await res.json()) as { code: string; message: string };
    return { code: body.code, message: body.message };
  }

  async function deadlineOverGrpcWeb(ms: number): Promise<{ code: string; message: string }> {
    const frame = encodeEnvelope(toBinary(LookupRequestSchema, create(LookupRequestSchema, { sku: "slow" })));
    const res = await fetch(`${baseUrl}/catalog.v1.Catalog/Lookup`, {
      method: "POST",
      headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1", "grpc-timeout": `${ms}m` },
      body: frame,
    });
    const body = Buffer.from(await res.arrayBuffer());
    const trailers = res.headers.has("grpc-status")
      ? new Map([
          ["grpc-status", res.headers.get("grpc-status")!],
          ["grpc-message", res.headers.get("grpc-message") ?? ""],
        ])
      : webFrames(body).trailers;
    return {
      code: trailers.get("grpc-status")!,
      message: decodeGrpcMessage(trailers.get("grpc-message") ?? ""),
    };
  }

  it("a deadline ends a call with the same code and message over gRPC, gRPC-web and Connect, every time", async () => {
    const expected = deadlineWhileRunning().rawMessage;
    expect(await deadlineOverGrpc(200)).toEqual({ code: String(Code.DEADLINE_EXCEEDED), message: expected });
    // one timer ends the call: no run may come out "cancelled", whichever protocol
    const runs = 15;
    const outcomes = await Promise.all(
      Array.from({ length: runs }, (_, i) =>
        Promise.all([deadlineOverConnect(200 + (i % 5)), deadlineOverGrpcWeb(200 + (i % 5))]),
      ),
    );
    for (const [connect, web] of outcomes) {
      expect(connect).toEqual({ code: "deadline_exceeded", message: expected });
      expect(web).toEqual({ code: String(Code.DEADLINE_EXCEEDED), message: expected });
    }
  });

  it("a malformed timeout header is still refused by the protocol, not ignored", async () => {
    const res = await fetch(`${baseUrl}/catalog.v1.Catalog/Lookup`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "connect-protocol-version": "1",
        "connect-timeout-ms": "soon",
      },
      body: JSON.stringify({ sku: "A" }),
    });
    expect(((await res.json()) as { code: string }).code).toBe("invalid_argument");
  });
});

describe("listenGrpc cors", () => {
  let grpc: GrpcListener;
  let baseUrl: string;
  const server = createServer({ onError: () => {} });
  server.register(CatalogService, catalogImpl(newObserved()));

  beforeAll(async () => {
    grpc = await listenGrpc(server, {
      cors: { allowOrigins: ["http://app.example"], exposeHeaders: ["x-echo"] },
      fallback: (_req, res) => {
        res.statusCode = 418;
        res.end();
      },
    });
    baseUrl = `http://127.0.0.1:${grpc.port}`;
  });
  afterAll(async () => {
    await server.shutdown({ timeoutMs: 1000 });
    await grpc.close();
  });

  const preflight = (origin: string, path = "/catalog.v1.Catalog/Lookup") =>
    fetch(`${baseUrl}${path}`, {
      method: "OPTIONS",
      headers: {
        origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type,x-grpc-web,traceparent",
      },
    });

  it("answers a preflight from an allowed origin with the protocols' and trace headers", async () => {
    const res = await preflight("http://app.example");
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe("http://app.example");
    expect(res.headers.get("access-control-allow-methods")).toBe("POST, GET");
    const allowed = res.headers.get("access-control-allow-headers")!.split(", ");
    for (const h of [
      "content-type",
      "traceparent",
      "tracestate",
      "baggage",
      "grpc-timeout",
      "connect-protocol-version",
      "connect-timeout-ms",
      "x-grpc-web",
      "x-user-agent",
      "authorization",
    ]) {
      expect(allowed).toContain(h);
    }
    expect(res.headers.get("access-control-max-age")).toBe("600");
    expect(res.headers.get("vary")).toBe("Origin");
  });

  it("tells another origin nothing, and leaves preflights of other paths to the fallback", async () => {
    const other = await preflight("http://evil.example");
    expect(other.status).toBe(204);
    expect(other.headers.get("access-control-allow-origin")).toBeNull();
    expect(other.headers.get("access-control-allow-headers")).toBeNull();
    expect((await preflight("http://app.example", "/not/a/service")).status).toBe(418);
  });

  it("a cross-origin Connect call gets the origin and the exposed gRPC headers", async () => {
    const res = await fetch(`${baseUrl}/catalog.v1.Catalog/Lookup`, {
      method: "POST",
      headers: {
        origin: "http://app.example",
        "content-type": "application/json",
        "connect-protocol-version": "1",
      },
      body: JSON.stringify({ sku: "C-1" }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("access-control-allow-origin")).toBe("http://app.example");
    expect(res.headers.get("access-control-expose-headers")).toBe(
      "grpc-status, grpc-message, grpc-status-details-bin, weft-error-details-bin, x-echo",
    );
    expect(await res.json()).toMatchObject({ sku: "C-1" });
  });

  it("checks the option", () => {
    expect(() => createGrpcHandler(server, { cors: { allowOrigins: "*", allowCredentials: true } })).toThrow(
      ConfigError,
    );
    expect(() => createGrpcHandler(server, { cors: { allowOrigins: "x" as never } })).toThrow(
      /cors.allowOrigins/,
    );
  });
});

describe("a client that cancels mid-stream over gRPC-web (binary or text) or Connect", () => {
  /** What the server saw of one stream, by its SKU. */
  interface Ended {
    /** The handler's signal aborted, with this reason. */
    aborted: Deferred<unknown>;
    /** The handler's generator finished (its `finally` ran). */
    finished: Deferred<void>;
    /** The call ended (`onCallEnd`), with this error. */
    end: Deferred<unknown>;
  }
  const ended = new Map<string, Ended>();
  const reported: unknown[] = [];
  const watchEnd: Interceptor = (next) => (call) => {
    const e = ended.get(call.headers.get("x-sku") ?? "");
    if (e !== undefined) onCallEnd(call, { end: (_, _call, error) => e.end.resolve(error) }, undefined);
    return next(call);
  };
  const server = createServer({ onError: (e) => reported.push(e), interceptors: [watchEnd] });
  server.register(CatalogService, {
    ...catalogImpl(newObserved()),
    // `idle…` sends one tick and waits for its signal; `busy…` sends as fast as it is read, without end
    async *watchPrices({ sku }, ctx) {
      const e = ended.get(sku)!;
      ctx.signal.addEventListener("abort", () => e.aborted.resolve(ctx.signal.reason), { once: true });
      try {
        let seq = 0;
        yield { sku, seq: ++seq, priceCents: 1n };
        if (sku.startsWith("idle")) {
          await new Promise<never>((_, reject) => {
            ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason), { once: true });
          });
        }
        for (;;) yield { sku, seq: ++seq, priceCents: 1n };
      } finally {
        e.finished.resolve();
      }
    },
  });
  const grpc = servedOverGrpc(server);

  const TYPES = {
    binary: "application/grpc-web+proto",
    text: "application/grpc-web-text+proto",
    connect: "application/connect+proto",
  } as const;

  /** Starts `sku`'s stream over HTTP/1.1 (fetch) or HTTP/2, reads its first bytes, then cancels it. */
  async function cancelAfterFirstChunk(sku: string, kind: keyof typeof TYPES, h2: boolean): Promise<Ended> {
    const e: Ended = { aborted: deferred<unknown>(), finished: deferred(), end: deferred<unknown>() };
    ended.set(sku, e);
    const frame = encodeEnvelope(
      toBinary(WatchPricesRequestSchema, create(WatchPricesRequestSchema, { sku, ticks: 1 })),
    );
    const type = TYPES[kind];
    const headers = {
      "content-type": type,
      "x-sku": sku,
      ...(kind === "connect" ? {} : { "x-grpc-web": "1" }),
    };
    const body = kind === "text" ? frame.toString("base64") : frame;
    const url = `http://127.0.0.1:${grpc().port}`;
    const path = "/catalog.v1.Catalog/WatchPrices";
    if (h2) {
      const session = http2Connect(url);
      const stream = session.request({ ":method": "POST", ":path": path, ...headers });
      stream.end(body);
      const [response] = (await once(stream, "response")) as [Record<string, string>];
      expect(response["content-type"]).toBe(type);
      await once(stream, "data");
      stream.close(http2Constants.NGHTTP2_CANCEL);
      await once(stream, "close");
      session.close();
      return e;
    }
    const abort = new AbortController();
    const res = await fetch(url + path, { method: "POST", headers, body, signal: abort.signal });
    expect(res.headers.get("content-type")).toBe(type);
    const reader = res.body!.getReader();
    expect((await reader.read()).done).toBe(false);
    abort.abort();
    await reader.closed.catch(() => {});
    return e;
  }

  for (const h2 of [false, true]) {
    for (const kind of ["binary", "text", "connect"] as const) {
      for (const handler of ["idle", "busy"]) {
        const name = `${handler} ${kind} over ${h2 ? "HTTP/2" : "HTTP/1.1"}`;
        it(`${name}: the handler sees CANCELLED, its generator finishes, the call ends CANCELLED`, async () => {
          reported.length = 0;
          const e = await cancelAfterFirstChunk(name, kind, h2);
          expect(((await e.aborted.promise) as WeftError).code).toBe(Code.CANCELLED);
          await e.finished.promise;
          // the client went away: the write that failed is no error of the handler's
          expect(WeftError.from(await e.end.promise).code).toBe(Code.CANCELLED);
          expect(reported).toEqual([]);
        });
      }
    }
  }
});

describe("a response message connect-node cannot encode or compress, over gRPC-web or Connect", () => {
  const reported: unknown[] = [];
  /** The `held` stream's first message, which the tests change after it was yielded. */
  let held: { sku: string; seq: number; priceCents: bigint } | undefined;
  const ends = new Map<string, Deferred<unknown>>();
  const watchEnd: Interceptor = (next) => (call) => {
    const end = ends.get(call.headers.get("x-case") ?? "");
    if (end !== undefined) onCallEnd(call, { end: (_, _call, error) => end.resolve(error) }, undefined);
    return next(call);
  };
  const server = createServer({ onError: (e) => reported.push(e), interceptors: [watchEnd] });
  server.register(CatalogService, {
    ...catalogImpl(newObserved()),
    async *watchPrices({ sku }) {
      if (sku === "held") {
        // 16 MiB: more than the sockets and the client's buffer hold unread, so its write waits
        held = { sku: "h".repeat(16 << 20), seq: 1, priceCents: 1n };
        yield held;
        yield { sku, seq: 2, priceCents: 2n };
        return;
      }
      if (sku === "compressed") {
        // over the 1 KiB threshold: compressed for a client that accepts gzip
        for (let seq = 1; seq <= 3; seq++) yield { sku: "c".repeat(4096), seq, priceCents: 1n };
        return;
      }
      yield { sku, seq: 1, priceCents: 1n };
      // an int32 field given a string: the handler's bug, found only when the message is encoded
      yield { sku, seq: "two" as unknown as number, priceCents: 2n };
    },
    // protobuf binary writes a number as a string field, JSON refuses it; neither has an int64 of 1.5
    lookup: ({ sku }) =>
      sku === "json-only"
        ? { sku, name: 42 as unknown as string, priceCents: 1n }
        : { sku, name: "n", priceCents: 1.5 as unknown as bigint },
    async importItems(items) {
      for await (const _ of items);
      return { imported: "two" as unknown as number };
    },
  });
  const grpc = servedOverGrpc(server);

  const watch = (sku: string) =>
    encodeEnvelope(toBinary(WatchPricesRequestSchema, create(WatchPricesRequestSchema, { sku, ticks: 2 })));
  const request = watch("S");

  for (const [name, type, body] of [
    ["gRPC-web", "application/grpc-web+proto", request],
    ["Connect, binary", "application/connect+proto", request],
    ["Connect, JSON", "application/connect+json", encodeEnvelope(Buffer.from('{"sku":"S","ticks":2}'))],
  ] as const) {
    it(`${name}: the client gets INTERNAL after the first message, and the server reports its fault, not a cancel`, async () => {
      reported.length = 0;
      const end = deferred<unknown>();
      ends.set(name, end);
      const res = await fetch(`http://127.0.0.1:${grpc().port}/catalog.v1.Catalog/WatchPrices`, {
        method: "POST",
        headers: {
          "content-type": type,
          "x-case": name,
          ...(type.includes("web") ? { "x-grpc-web": "1" } : {}),
        },
        body,
      });
      const { messages, trailers } = webFrames(Buffer.from(await res.arrayBuffer()));
      expect(messages).toHaveLength(type.includes("web") ? 1 : 2);
      if (type.includes("web")) {
        expect(trailers.get("grpc-status")).toBe(String(Code.INTERNAL));
      } else {
        // Connect's end-of-stream frame is the last "message" here: its JSON carries the error
        expect(JSON.parse(messages[1]!.toString()).error.code).toBe("internal");
      }
      const error = await end.promise;
      expect(String(error)).toMatch(/cannot encode field catalog\.v1\.PriceTick\.seq/);
      expect(WeftError.from(error).code).not.toBe(Code.CANCELLED);
      expect(reported).toHaveLength(1);
      expect(String(reported[0])).toMatch(/cannot encode field/);
    });
  }

  for (const h2 of [false, true]) {
    const name = `Connect over ${h2 ? "HTTP/2" : "HTTP/1.1"}, the client gone while a message waits to be written`;
    it(`${name}: the call ends CANCELLED, though the handler has made that message unencodable since`, async () => {
      reported.length = 0;
      const end = deferred<unknown>();
      ends.set(name, end);
      const url = `http://127.0.0.1:${grpc().port}`;
      const path = "/catalog.v1.Catalog/WatchPrices";
      const headers = { "content-type": "application/connect+proto", "x-case": name };
      const spoil = () => {
        held!.seq = "two" as unknown as number;
      };
      if (h2) {
        // a flow-control window of 0: no byte of the first message can leave
        const session = http2Connect(url, { settings: { initialWindowSize: 0 } });
        const stream = session.request({ ":method": "POST", ":path": path, ...headers });
        stream.end(watch("held"));
        await once(stream, "response");
        spoil();
        stream.close(http2Constants.NGHTTP2_CANCEL);
        await once(stream, "close");
        session.close();
      } else {
        const abort = new AbortController();
        await fetch(url + path, { method: "POST", headers, body: watch("held"), signal: abort.signal });
        spoil();
        abort.abort();
      }
      expect(WeftError.from(await end.promise).code).toBe(Code.CANCELLED);
      expect(reported).toEqual([]);
    });
  }

  for (const [name, type, accept] of [
    ["gRPC-web", "application/grpc-web+proto", "grpc-accept-encoding"],
    ["Connect", "application/connect+proto", "connect-accept-encoding"],
  ] as const) {
    it(`${name}: a message connect-node fails to compress ends the call with a fault of the server's, reported once, not a cancel`, async () => {
      reported.length = 0;
      const end = deferred<unknown>();
      ends.set(name, end);
      // zlib failing on the second message, as it could only for want of memory
      const gzip = compressionGzip.compress;
      let calls = 0;
      const spy = vi
        .spyOn(compressionGzip, "compress")
        .mockImplementation((bytes) =>
          ++calls === 2 ? gzip(bytes).then(() => Promise.reject(new Error("zlib failed"))) : gzip(bytes),
        );
      try {
        const res = await fetch(`http://127.0.0.1:${grpc().port}/catalog.v1.Catalog/WatchPrices`, {
          method: "POST",
          headers: {
            "content-type": type,
            [accept]: "gzip",
            "x-case": name,
            ...(type.includes("web") ? { "x-grpc-web": "1" } : {}),
          },
          body: watch("compressed"),
        });
        expect(res.status).toBe(200);
        // connect-node breaks the response off: no status, no end of stream
        await expect(res.arrayBuffer()).rejects.toThrow();
        const error = await end.promise;
        expect(String(error)).toMatch(/failed to compress/);
        expect(reported).toEqual([error]);
        expect(calls).toBe(2);
      } finally {
        spy.mockRestore();
      }
    });
  }

  /** How a connect-node client's call of `name` failed, and how the server recorded its end. */
  async function failedCall(name: string, call: (client: Client<typeof Catalog>) => Promise<unknown>) {
    reported.length = 0;
    const end = deferred<unknown>();
    ends.set(name, end);
    const baseUrl = `http://127.0.0.1:${grpc().port}`;
    const transport = name.startsWith("gRPC-web")
      ? createGrpcWebTransport({ baseUrl, httpVersion: "1.1" })
      : createConnectTransport({
          baseUrl,
          httpVersion: name.includes("HTTP/2") ? "2" : "1.1",
          useBinaryFormat: name.includes("binary"),
          useHttpGet: name.includes("GET"),
        });
    const client = createConnectClient(Catalog, transport);
    const error = await call(client).then(
      () => expect.fail("the call succeeded"),
      (e: unknown) => ConnectError.from(e),
    );
    return { error, ended: await end.promise };
  }

  for (const [name, sku] of [
    ["Connect, JSON over HTTP/1.1", "both"],
    ["Connect, JSON GET", "json-only"],
    ["Connect, binary over HTTP/2", "both"],
    ["gRPC-web, binary over HTTP/1.1", "both"],
  ] as const) {
    it(`${name}, unary: the client gets INTERNAL, and the call ends with the encoder's error, reported once`, async () => {
      const { error, ended } = await failedCall(name, (c) =>
        c.lookup({ sku }, { headers: { "x-case": name } }),
      );
      expect(error.code).toBe(ConnectCode.Internal);
      expect(String(ended)).toMatch(/cannot encode field catalog\.v1\.Item\.(name|price_cents)/);
      expect(reported).toEqual([ended]);
    });
  }

  for (const name of [
    "Connect, JSON over HTTP/1.1",
    "Connect, binary over HTTP/2",
    "gRPC-web, binary over HTTP/1.1",
  ]) {
    it(`${name}, client streaming: the client gets INTERNAL, and the call ends with the encoder's error, reported once`, async () => {
      async function* items() {
        yield { sku: "I-1", name: "n", priceCents: 1n };
      }
      const { error, ended } = await failedCall(name, (c) =>
        c.importItems(items(), { headers: { "x-case": name } }),
      );
      expect(error.code).toBe(ConnectCode.Internal);
      expect(String(ended)).toMatch(/cannot encode field catalog\.v1\.ImportSummary\.imported/);
      expect(reported).toEqual([ended]);
    });
  }
});

/** `server` over gRPC, gRPC-web and Connect for the tests of the enclosing `describe`: its listener. */
function servedOverGrpc(server: Server): () => GrpcListener {
  let grpc: GrpcListener | undefined;
  beforeAll(async () => {
    grpc = await listenGrpc(server);
  });
  afterAll(async () => {
    await server.shutdown({ timeoutMs: 1000 });
    await grpc?.close();
  });
  return () => grpc!;
}
