import { afterEach, describe, expect, it } from "vitest";
import {
  Code,
  createClient,
  createTcpTransport,
  type Interceptor,
  type Server,
  type ServerOptions,
  type StreamResult,
  type Transport,
  WeftError,
} from "../../src/index.ts";
import { Echo, startServer } from "../fixtures.ts";

const servers: Server[] = [];
const transports: Transport[] = [];
afterEach(async () => {
  await Promise.all(transports.splice(0).map((t) => t.close()));
  await Promise.all(servers.splice(0).map((s) => s.shutdown({ timeoutMs: 1000 })));
});

async function echoServer(options: ServerOptions, handled: string[] = []) {
  const { server, address } = await startServer(
    (s) =>
      s.register(Echo, {
        echo: (req, ctx) => {
          handled.push(`handler ${req.text}`);
          return { text: req.text, headers: ctx.requestHeaders.toJSON() };
        },
        count: async function* (req) {
          for (let i = 0; i < req.n; i++) yield { i };
        },
        sum: async (reqs) => {
          let total = 0;
          let count = 0;
          for await (const r of reqs) {
            total += r.n;
            count++;
          }
          return { total, count };
        },
        chat: async function* (reqs) {
          for await (const r of reqs) yield { text: r.text.toUpperCase() };
        },
        notify: () => {},
      }),
    options,
  );
  servers.push(server);
  const transport = createTcpTransport({ address });
  transports.push(transport);
  return transport;
}

/** An interceptor that logs when the call goes in and when its result comes out. */
const tracing =
  (log: string[], name: string): Interceptor =>
  (next) =>
  async (call) => {
    log.push(`${name} > ${call.side}`);
    const result = await next(call);
    log.push(`${name} <`);
    return result;
  };

/** Wraps an async iterable, recording each element as it passes. */
async function* tap<T>(messages: AsyncIterable<T>, seen: T[]): AsyncIterable<T> {
  for await (const m of messages) {
    seen.push(m);
    yield m;
  }
}

describe("interceptors over TCP", () => {
  it("run outermost first on both sides, around the handler", async () => {
    const log: string[] = [];
    const transport = await echoServer(
      { interceptors: [tracing(log, "server-outer"), tracing(log, "server-inner")] },
      log,
    );
    const client = createClient(Echo, transport, {
      interceptors: [tracing(log, "client-outer"), tracing(log, "client-inner")],
    });
    await client.echo({ text: "x" });
    expect(log).toEqual([
      "client-outer > client",
      "client-inner > client",
      "server-outer > server",
      "server-inner > server",
      "handler x",
      "server-inner <",
      "server-outer <",
      "client-inner <",
      "client-outer <",
    ]);
  });

  it("read and write request headers, response headers and trailers on both sides", async () => {
    const serverSide: Interceptor = (next) => async (call) => {
      const tenant = call.headers.get("x-tenant");
      call.headers.set("x-seen-by-server-interceptor", "yes");
      const result = await next(call);
      result.headers.set("x-tenant-echo", tenant ?? "none");
      result.trailers.set("x-server-trailer", "st");
      return result;
    };
    let clientSaw: Record<string, string> = {};
    const clientSide: Interceptor = (next) => async (call) => {
      call.headers.set("x-tenant", "acme");
      const result = await next(call);
      clientSaw = { ...result.headers.toJSON(), ...result.trailers.toJSON() };
      return result;
    };
    const transport = await echoServer({ interceptors: [serverSide] });
    const client = createClient(Echo, transport, { interceptors: [clientSide] });
    let header: Record<string, string> = {};
    let trailer: Record<string, string> = {};
    const reply = await client.echo(
      { text: "x" },
      { onHeader: (h) => (header = h.toJSON()), onTrailer: (t) => (trailer = t.toJSON()) },
    );
    expect(reply.headers).toEqual({ "x-tenant": "acme", "x-seen-by-server-interceptor": "yes" });
    expect(header).toEqual({ "x-tenant-echo": "acme" });
    expect(trailer).toEqual({ "x-server-trailer": "st" });
    expect(clientSaw).toEqual({ "x-tenant-echo": "acme", "x-server-trailer": "st" });
  });

  it("see every message of a server stream, on both sides", async () => {
    const serverSent: unknown[] = [];
    const clientGot: unknown[] = [];
    const wrapResult =
      (seen: unknown[]): Interceptor =>
      (next) =>
      async (call) => {
        const result = await next(call);
        if (result.stream) (result as StreamResult).messages = tap(result.messages, seen);
        return result;
      };
    const transport = await echoServer({ interceptors: [wrapResult(serverSent)] });
    const client = createClient(Echo, transport, { interceptors: [wrapResult(clientGot)] });
    const received: unknown[] = [];
    for await (const m of client.count({ n: 5 })) received.push(m);
    const expected = [0, 1, 2, 3, 4].map((i) => ({ i }));
    expect(received).toEqual(expected);
    expect(serverSent).toEqual(expected);
    expect(clientGot).toEqual(expected);
  });

  it("see a client-streaming call's response as a unary result, on both sides, and can replace it", async () => {
    const results: string[] = [];
    const record =
      (side: string): Interceptor =>
      (next) =>
      async (call) => {
        const result = await next(call);
        results.push(
          `${side} ${call.stream} ${result.stream} ${JSON.stringify(!result.stream && result.message)}`,
        );
        if (!result.stream && call.side === "server") result.message = { total: 100, count: 1 };
        return result;
      };
    const transport = await echoServer({ interceptors: [record("server")] });
    const client = createClient(Echo, transport, { interceptors: [record("client")] });
    async function* numbers() {
      yield { n: 1 };
      yield { n: 2 };
    }
    await expect(client.sum(numbers())).resolves.toEqual({ total: 100, count: 1 });
    expect(results).toEqual([
      'server true false {"total":3,"count":2}',
      'client true false {"total":100,"count":1}',
    ]);
  });

  it("see every request message of client and bidi streams, and can transform them", async () => {
    const serverGot: unknown[] = [];
    const serverSide: Interceptor = (next) => async (call) => {
      if (call.stream) call.messages = tap(call.messages, serverGot);
      return next(call);
    };
    const double: Interceptor = (next) => async (call) => {
      if (call.stream && call.method.name === "sum") {
        const inner = call.messages as AsyncIterable<{ n: number }>;
        call.messages = (async function* () {
          for await (const m of inner) yield { n: m.n * 2 };
        })();
      }
      return next(call);
    };
    const transport = await echoServer({ interceptors: [serverSide] });
    const client = createClient(Echo, transport, { interceptors: [double] });
    async function* numbers() {
      yield { n: 1 };
      yield { n: 2 };
      yield { n: 3 };
    }
    await expect(client.sum(numbers())).resolves.toEqual({ total: 12, count: 3 });
    expect(serverGot).toEqual([{ n: 2 }, { n: 4 }, { n: 6 }]);

    serverGot.length = 0;
    async function* words() {
      yield { text: "a" };
      yield { text: "b" };
    }
    const replies: unknown[] = [];
    for await (const r of client.chat(words())) replies.push(r);
    expect(replies).toEqual([{ text: "A" }, { text: "B" }]);
    expect(serverGot).toEqual([{ text: "a" }, { text: "b" }]);
  });

  it("a client interceptor can short-circuit with an error: nothing reaches the server", async () => {
    const handled: string[] = [];
    const transport = await echoServer({}, handled);
    const deny: Interceptor = () => async (call) => {
      throw new WeftError(Code.PERMISSION_DENIED, `no access to ${call.method.path}`, { reason: "DENIED" });
    };
    const client = createClient(Echo, transport, { interceptors: [deny] });
    const e = (await client.echo({ text: "x" }).catch((e: unknown) => e)) as WeftError;
    expect(e.code).toBe(Code.PERMISSION_DENIED);
    expect(e.reason).toBe("DENIED");
    expect(handled).toEqual([]);
    // streams go through the chain too
    const iterate = async () => {
      for await (const _ of client.count({ n: 1 })) {
        // unreachable
      }
    };
    await expect(iterate()).rejects.toMatchObject({ code: Code.PERMISSION_DENIED });
  });

  it("a server interceptor can short-circuit with an error: the handler never runs", async () => {
    const handled: string[] = [];
    const auth: Interceptor = (next) => async (call) => {
      if (call.headers.get("authorization") !== "Bearer good") {
        throw new WeftError(Code.UNAUTHENTICATED, "missing or bad token", {
          reason: "BAD_TOKEN",
          metadata: { "www-authenticate": "Bearer" },
        });
      }
      return next(call);
    };
    const transport = await echoServer({ interceptors: [auth] }, handled);
    const client = createClient(Echo, transport);
    const e = (await client.echo({ text: "x" }).catch((e: unknown) => e)) as WeftError;
    expect(e.code).toBe(Code.UNAUTHENTICATED);
    expect(e.reason).toBe("BAD_TOKEN");
    expect(e.metadata.get("www-authenticate")).toBe("Bearer");
    expect(handled).toEqual([]);
    await expect(
      client.echo({ text: "ok" }, { headers: { authorization: "Bearer good" } }),
    ).resolves.toMatchObject({ text: "ok" });
    expect(handled).toEqual(["handler ok"]);
  });

  it("a client interceptor sees the call's deadline and serializer and may change them", async () => {
    const seen: Array<{ deadline: number | undefined; serializer: string }> = [];
    const observe: Interceptor = (next) => async (call) => {
      seen.push({ deadline: call.deadline, serializer: call.serializer });
      call.serializer = "json";
      return next(call);
    };
    const serverSaw: string[] = [];
    const transport = await echoServer({
      interceptors: [
        (next) => async (call) => {
          serverSaw.push(call.serializer);
          return next(call);
        },
      ],
    });
    const client = createClient(Echo, transport, { interceptors: [observe] });
    const before = Date.now();
    await client.echo({ text: "x" }, { timeoutMs: 60_000 });
    expect(seen[0]!.serializer).toBe("msgpack");
    expect(seen[0]!.deadline).toBeGreaterThanOrEqual(before + 60_000);
    expect(serverSaw).toEqual(["json"]);
  });
});
