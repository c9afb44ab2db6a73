/**
 * Streaming end to end over real TCP: server, client and bidi streams as AsyncIterables on both
 * sides — order, volume, empty streams, errors mid-stream, cancellation from either end, headers and
 * trailers, and many streams interleaved on one connection.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  Code,
  createClient,
  createTcpTransport,
  type Metadata,
  type Server,
  type ServiceImpl,
  type TcpTransportOptions,
  type Transport,
  WeftError,
} from "../../src/index.ts";
import { aborted, deferred } from "../deferred.ts";
import { Echo, startServer } from "../fixtures.ts";

type EchoImpl = ServiceImpl<typeof Echo>;

const defaults: EchoImpl = {
  echo: (req) => ({ text: req.text }),
  async *count() {},
  sum: async () => ({ total: 0, count: 0 }),
  async *chat() {},
  notify: () => {},
};

const servers: Server[] = [];
const transports: Transport[] = [];
afterEach(async () => {
  await Promise.all(transports.splice(0).map((t) => t.close()));
  await Promise.all(servers.splice(0).map((s) => s.shutdown({ timeoutMs: 100 })));
});

/** A server on a free port with `impl` over the defaults, and a client over real TCP. */
async function serve(impl: Partial<EchoImpl>, options: Omit<TcpTransportOptions, "address"> = {}) {
  const { server, address } = await startServer((s) => s.register(Echo, { ...defaults, ...impl }));
  servers.push(server);
  const transport = createTcpTransport({ address, ...options });
  transports.push(transport);
  return { server, client: createClient(Echo, transport) };
}

/** Reads a stream to its end; returns what arrived and the error it ended with, if any. */
async function drain<T>(stream: AsyncIterable<T>): Promise<{ items: T[]; error: unknown }> {
  const items: T[] = [];
  try {
    for await (const item of stream) items.push(item);
  } catch (error) {
    return { items, error };
  }
  return { items, error: undefined };
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

async function* from<T>(items: Iterable<T>): AsyncGenerator<T> {
  for (const item of items) yield item;
}

describe("server streaming over TCP", () => {
  it("delivers many messages, in order", async () => {
    const { client } = await serve({
      async *count(req) {
        for (let i = 0; i < req.n; i++) yield { i, pad: "x".repeat(i % 200) };
      },
    });
    const { items, error } = await drain(client.count({ n: 10_000 }));
    expect(error).toBeUndefined();
    expect(items.map((m) => m.i)).toEqual(range(10_000));
    expect(items[199]!.pad).toHaveLength(199);
  });

  it("an empty stream completes with no messages", async () => {
    const { client } = await serve({ async *count() {} });
    const { items, error } = await drain(client.count({ n: 0 }));
    expect(items).toEqual([]);
    expect(error).toBeUndefined();
  });

  it("a handler error mid-stream reaches the client after the messages already sent", async () => {
    const { client } = await serve({
      async *count(req, ctx) {
        for (let i = 0; i < req.n; i++) yield { i };
        ctx.responseTrailers.set("x-sent", String(req.n));
        throw new WeftError(Code.NOT_FOUND, "ran out of items", {
          reason: "NO_MORE_ITEMS",
          details: [{ type: "test.Where", value: { at: req.n } }],
        });
      },
    });
    const { items, error } = await drain(client.count({ n: 3 }));
    expect(items.map((m) => m.i)).toEqual([0, 1, 2]);
    expect(error).toBeInstanceOf(WeftError);
    const e = error as WeftError;
    expect(e.code).toBe(Code.NOT_FOUND);
    expect(e.reason).toBe("NO_MORE_ITEMS");
    expect(e.rawMessage).toBe("ran out of items");
    expect(e.details).toEqual([{ type: "test.Where", value: { at: 3 } }]);
    expect(e.metadata.get("x-sent")).toBe("3"); // trailers travel with the error
  });

  it("an unexpected error mid-stream reaches the client as INTERNAL, after the messages, without its text", async () => {
    const { client } = await serve({
      async *count() {
        yield { i: 0 };
        yield { i: 1 };
        throw new Error("secret database password in this message");
      },
    });
    const { items, error } = await drain(client.count({ n: 2 }));
    expect(items.map((m) => m.i)).toEqual([0, 1]);
    expect(error).toBeInstanceOf(WeftError);
    expect((error as WeftError).code).toBe(Code.INTERNAL);
    expect((error as WeftError).message).not.toContain("secret");
  });

  it("breaking out of for-await early cancels the server handler", async () => {
    const handlerAborted = deferred<unknown>();
    let cleanedUp = false;
    let yielded = 0;
    const { server, client } = await serve({
      async *count(_req, ctx) {
        void aborted(ctx.signal).then(handlerAborted.resolve);
        try {
          for (let i = 0; ; i++) {
            yielded++;
            yield { i };
          }
        } finally {
          cleanedUp = true;
        }
      },
    });
    const seen: number[] = [];
    for await (const m of client.count({ n: 0 })) {
      seen.push(m.i);
      if (seen.length === 3) break;
    }
    expect(seen).toEqual([0, 1, 2]);
    const reason = await handlerAborted.promise;
    expect(reason).toBeInstanceOf(WeftError);
    expect((reason as WeftError).code).toBe(Code.CANCELLED);
    await vi.waitFor(() => {
      expect(cleanedUp).toBe(true);
      expect(server.inFlight).toBe(0);
    });
    const after = yielded;
    // The connection is still good for other calls, and the cancelled handler produces nothing more.
    await expect(client.echo({ text: "still here" })).resolves.toEqual({ text: "still here" });
    expect(yielded).toBe(after);
  });

  it("response headers arrive before the first message; trailers after the last", async () => {
    const { client } = await serve({
      async *count(req, ctx) {
        ctx.responseHeaders.set("x-stream", "count");
        for (let i = 0; i < req.n; i++) yield { i };
        ctx.responseTrailers.set("x-total", String(req.n));
      },
    });
    const events: string[] = [];
    let headers: Metadata | undefined;
    let trailers: Metadata | undefined;
    const stream = client.count(
      { n: 2 },
      {
        onHeader: (h) => {
          headers = h;
          events.push("headers");
        },
        onTrailer: (t) => {
          trailers = t;
          events.push("trailers");
        },
      },
    );
    for await (const m of stream) events.push(`message ${m.i}`);
    expect(events).toEqual(["headers", "message 0", "message 1", "trailers"]);
    expect(headers?.get("x-stream")).toBe("count");
    expect(trailers?.get("x-total")).toBe("2");
    expect(trailers?.has("x-stream")).toBe(false);
  });

  it("an empty stream still carries its headers and trailers", async () => {
    const { client } = await serve({
      // biome-ignore lint/correctness/useYield: the point is a stream with no messages
      async *count(_req, ctx) {
        ctx.responseHeaders.set("x-empty", "yes");
        ctx.responseTrailers.set("x-total", "0");
      },
    });
    let headers: Metadata | undefined;
    let trailers: Metadata | undefined;
    const { items, error } = await drain(
      client.count({ n: 0 }, { onHeader: (h) => (headers = h), onTrailer: (t) => (trailers = t) }),
    );
    expect(items).toEqual([]);
    expect(error).toBeUndefined();
    expect(headers?.get("x-empty")).toBe("yes");
    expect(trailers?.get("x-total")).toBe("0");
  });
});

describe("onTrailer when a call ends with an error", () => {
  /** A handler that sets a trailer, then fails with `code` (after `messages` stream messages). */
  const failing = (code: Code) => (ctx: { responseTrailers: Metadata }) => {
    ctx.responseTrailers.set("x-progress", "half");
    return new WeftError(code, "gave up", { reason: "GAVE_UP", metadata: { "x-why": "tired" } });
  };

  it("a stream that fails after its messages: the trailers after them, then the error", async () => {
    const { client } = await serve({
      async *count(_req, ctx) {
        yield { i: 0 };
        throw failing(Code.ABORTED)(ctx);
      },
    });
    const events: string[] = [];
    let trailers: Metadata | undefined;
    const { items, error } = await drain(
      client.count(
        { n: 1 },
        {
          onHeader: () => events.push("headers"),
          onTrailer: (t) => {
            trailers = t;
            events.push("trailers");
          },
        },
      ),
    );
    expect(items).toEqual([{ i: 0 }]);
    expect((error as WeftError).code).toBe(Code.ABORTED);
    expect(events).toEqual(["headers", "trailers"]);
    expect(trailers?.get("x-progress")).toBe("half");
    expect(trailers?.get("x-why")).toBe("tired");
    expect(trailers).toBe((error as WeftError).metadata);
  });

  it("a stream that fails before any message, a unary call and a client-streaming call that fail", async () => {
    const { client } = await serve({
      // biome-ignore lint/correctness/useYield: it fails before its first message
      async *count(_req, ctx) {
        throw failing(Code.UNAVAILABLE)(ctx);
      },
      echo: (_req, ctx) => {
        throw failing(Code.NOT_FOUND)(ctx);
      },
      sum: async (_reqs, ctx) => {
        throw failing(Code.INVALID_ARGUMENT)(ctx);
      },
    });
    const seen: string[] = [];
    const onTrailer = (t: Metadata) => seen.push(`${t.get("x-progress")} ${t.get("x-why")}`);
    expect((await drain(client.count({ n: 1 }, { onTrailer }))).error).toBeInstanceOf(WeftError);
    await expect(client.echo({ text: "x" }, { onTrailer })).rejects.toMatchObject({ code: Code.NOT_FOUND });
    await expect(client.sum(from([{ n: 1 }]), { onTrailer })).rejects.toMatchObject({
      code: Code.INVALID_ARGUMENT,
    });
    expect(seen).toEqual(["half tired", "half tired", "half tired"]);
  });

  it("an error of this side (the deadline) gives that error's metadata", async () => {
    const { client } = await serve({
      async *count(_req, ctx) {
        yield { i: 0 };
        await aborted(ctx.signal);
      },
    });
    let trailers: Metadata | undefined;
    const { error } = await drain(
      client.count({ n: 1 }, { timeoutMs: 100, onTrailer: (t) => (trailers = t) }),
    );
    expect((error as WeftError).code).toBe(Code.DEADLINE_EXCEEDED);
    expect(trailers).toBe((error as WeftError).metadata);
    expect(trailers?.has("deadline-ms")).toBe(true);
    expect(trailers?.has("x-progress")).toBe(false);
  });
});

describe("client streaming over TCP", () => {
  const sum: EchoImpl["sum"] = async (requests, ctx) => {
    ctx.responseHeaders.set("x-kind", "sum");
    let total = 0;
    let count = 0;
    for await (const { n } of requests) {
      if (n !== count) throw new WeftError(Code.INVALID_ARGUMENT, `got ${n} at position ${count}`);
      total += n;
      count++;
    }
    ctx.responseTrailers.set("x-count", String(count));
    return { total, count };
  };

  it("delivers many messages, in order, and returns one response", async () => {
    const { client } = await serve({ sum });
    const N = 10_000;
    await expect(client.sum(from(range(N).map((n) => ({ n }))))).resolves.toEqual({
      total: (N * (N - 1)) / 2,
      count: N,
    });
  });

  it("an empty request stream gets its response", async () => {
    const { client } = await serve({ sum });
    let headers: Metadata | undefined;
    let trailers: Metadata | undefined;
    await expect(
      client.sum(from([]), { onHeader: (h) => (headers = h), onTrailer: (t) => (trailers = t) }),
    ).resolves.toEqual({ total: 0, count: 0 });
    expect(headers?.get("x-kind")).toBe("sum");
    expect(trailers?.get("x-count")).toBe("0");
  });

  it("a request iterable that throws cancels the call on both sides", async () => {
    const handlerAborted = deferred<unknown>();
    const handlerReadError = deferred<unknown>();
    const received: number[] = [];
    const { server, client } = await serve({
      async sum(requests, ctx) {
        void aborted(ctx.signal).then(handlerAborted.resolve);
        try {
          for await (const { n } of requests) received.push(n);
        } catch (e) {
          handlerReadError.resolve(e);
          throw e;
        }
        return { total: -1, count: -1 };
      },
    });
    const twoSent = deferred();
    async function* requests() {
      yield { n: 0 };
      yield { n: 1 };
      await twoSent.promise;
      throw new Error("producer broke");
    }
    const call = client.sum(requests());
    await vi.waitFor(() => expect(received).toEqual([0, 1]));
    twoSent.resolve();
    const error = await call.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(WeftError);
    expect((error as WeftError).code).toBe(Code.CANCELLED);
    expect((error as WeftError).message).toContain("producer broke");
    expect(((await handlerAborted.promise) as WeftError).code).toBe(Code.CANCELLED);
    expect(((await handlerReadError.promise) as WeftError).code).toBe(Code.CANCELLED);
    await vi.waitFor(() => expect(server.inFlight).toBe(0));
  });

  it("the server may answer before the client half-closes; the client stops sending", async () => {
    const { client } = await serve({
      async sum(requests) {
        let total = 0;
        let count = 0;
        for await (const { n } of requests) {
          total += n;
          if (++count === 3) break;
        }
        return { total, count };
      },
    });
    let requestsClosed = false;
    async function* endless() {
      try {
        for (let n = 1; ; n++) yield { n };
      } finally {
        requestsClosed = true;
      }
    }
    await expect(client.sum(endless())).resolves.toEqual({ total: 6, count: 3 });
    await vi.waitFor(() => expect(requestsClosed).toBe(true));
  });

  it("a handler error after reading part of the stream reaches the client", async () => {
    const { client } = await serve({
      async sum(requests) {
        for await (const { n } of requests) {
          if (n === 5) throw new WeftError(Code.OUT_OF_RANGE, "five is too many", { reason: "TOO_MANY" });
        }
        return { total: 0, count: 0 };
      },
    });
    const error = await client.sum(from(range(1000).map((n) => ({ n })))).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(WeftError);
    expect((error as WeftError).code).toBe(Code.OUT_OF_RANGE);
    expect((error as WeftError).reason).toBe("TOO_MANY");
  });
});

describe("bidi streaming over TCP", () => {
  const echoChat: EchoImpl["chat"] = async function* (requests) {
    for await (const { text } of requests) yield { text: `re:${text}` };
  };

  it("delivers many messages each way, in order", async () => {
    const { client } = await serve({ chat: echoChat });
    const N = 5000;
    const { items, error } = await drain(client.chat(from(range(N).map((i) => ({ text: String(i) })))));
    expect(error).toBeUndefined();
    expect(items.map((m) => m.text)).toEqual(range(N).map((i) => `re:${i}`));
  });

  it("empty both ways completes", async () => {
    const { client } = await serve({ chat: echoChat });
    const { items, error } = await drain(client.chat(from([])));
    expect(items).toEqual([]);
    expect(error).toBeUndefined();
  });

  it("ping-pong: each request depends on the previous reply (true interleaving, no buffering deadlock)", async () => {
    const { client } = await serve({
      async *chat(requests) {
        for await (const { text } of requests) yield { text: String(Number(text) + 1) };
      },
    });
    const ROUNDS = 1000;
    let reply = deferred<string>();
    async function* requests() {
      let value = "0";
      for (let round = 0; round < ROUNDS; round++) {
        yield { text: value };
        value = await reply.promise; // the next request needs the server's answer to this one
      }
    }
    const replies: string[] = [];
    for await (const m of client.chat(requests())) {
      replies.push(m.text);
      const r = reply;
      reply = deferred<string>();
      r.resolve(m.text);
    }
    expect(replies).toEqual(range(ROUNDS).map((i) => String(i + 1)));
  });

  it("a handler error mid-stream reaches the client after the replies already sent", async () => {
    const { client } = await serve({
      async *chat(requests) {
        for await (const { text } of requests) {
          if (text === "stop") throw new WeftError(Code.ABORTED, "chat aborted", { reason: "CHAT_ABORTED" });
          yield { text: `re:${text}` };
        }
      },
    });
    const { items, error } = await drain(
      client.chat(from(["a", "b", "stop", "c"].map((text) => ({ text })))),
    );
    expect(items.map((m) => m.text)).toEqual(["re:a", "re:b"]);
    expect((error as WeftError).code).toBe(Code.ABORTED);
    expect((error as WeftError).reason).toBe("CHAT_ABORTED");
  });

  it("breaking out of for-await early cancels the server handler", async () => {
    const handlerAborted = deferred<unknown>();
    let cleanedUp = false;
    const { server, client } = await serve({
      async *chat(requests, ctx) {
        void aborted(ctx.signal).then(handlerAborted.resolve);
        try {
          yield* echoChat(requests, ctx) as AsyncIterable<{ text: string }>;
        } finally {
          cleanedUp = true;
        }
      },
    });
    async function* endless() {
      for (let i = 0; ; i++) yield { text: String(i) };
    }
    const seen: string[] = [];
    for await (const m of client.chat(endless())) {
      seen.push(m.text);
      if (seen.length === 3) break;
    }
    expect(seen).toEqual(["re:0", "re:1", "re:2"]);
    expect(((await handlerAborted.promise) as WeftError).code).toBe(Code.CANCELLED);
    await vi.waitFor(() => {
      expect(cleanedUp).toBe(true);
      expect(server.inFlight).toBe(0);
    });
  });

  it("a request iterable that throws cancels the call on both sides", async () => {
    const handlerAborted = deferred<unknown>();
    const { server, client } = await serve({
      async *chat(requests, ctx) {
        void aborted(ctx.signal).then(handlerAborted.resolve);
        yield* echoChat(requests, ctx) as AsyncIterable<{ text: string }>;
      },
    });
    const gotReply = deferred();
    async function* requests() {
      yield { text: "one" };
      await gotReply.promise;
      throw new Error("producer broke");
    }
    const seen: string[] = [];
    let error: unknown;
    try {
      for await (const m of client.chat(requests())) {
        seen.push(m.text);
        gotReply.resolve();
      }
    } catch (e) {
      error = e;
    }
    expect(seen).toEqual(["re:one"]);
    expect(error).toBeInstanceOf(WeftError);
    expect((error as WeftError).code).toBe(Code.CANCELLED);
    expect((error as WeftError).message).toContain("producer broke");
    expect(((await handlerAborted.promise) as WeftError).code).toBe(Code.CANCELLED);
    await vi.waitFor(() => expect(server.inFlight).toBe(0));
  });

  it("the server may end the call before the client half-closes; the client stops sending", async () => {
    const { server, client } = await serve({
      async *chat(requests) {
        let n = 0;
        for await (const { text } of requests) {
          yield { text: `re:${text}` };
          if (++n === 2) return;
        }
      },
    });
    let requestsClosed = false;
    let sent = 0;
    async function* endless() {
      try {
        for (let i = 0; ; i++) {
          sent++;
          yield { text: String(i) };
        }
      } finally {
        requestsClosed = true;
      }
    }
    const { items, error } = await drain(client.chat(endless()));
    expect(error).toBeUndefined();
    expect(items.map((m) => m.text)).toEqual(["re:0", "re:1"]);
    await vi.waitFor(() => expect(requestsClosed).toBe(true));
    expect(sent).toBeLessThan(100_000); // stopped by the call's end, not run to exhaustion
    expect(server.inFlight).toBe(0);
  });

  it("response headers and trailers", async () => {
    const { client } = await serve({
      async *chat(requests, ctx) {
        ctx.responseHeaders.set("x-room", "lobby");
        let n = 0;
        for await (const { text } of requests) {
          n++;
          yield { text };
        }
        ctx.responseTrailers.set("x-messages", String(n));
      },
    });
    let headers: Metadata | undefined;
    let trailers: Metadata | undefined;
    const { items } = await drain(
      client.chat(from([{ text: "hi" }, { text: "bye" }]), {
        onHeader: (h) => (headers = h),
        onTrailer: (t) => (trailers = t),
      }),
    );
    expect(items).toEqual([{ text: "hi" }, { text: "bye" }]);
    expect(headers?.get("x-room")).toBe("lobby");
    expect(trailers?.get("x-messages")).toBe("2");
  });
});

describe("many concurrent streams on one connection", () => {
  it("interleaves server, client and bidi streams without mixing them up", async () => {
    const peers = new Set<string | undefined>();
    let active = 0;
    let maxActive = 0;
    const enter = (peer: string | undefined) => {
      peers.add(peer);
      maxActive = Math.max(maxActive, ++active);
    };
    const { client } = await serve(
      {
        async *count(req, ctx) {
          enter(ctx.peer);
          try {
            for (let i = 0; i < req.n; i++) {
              yield { i, pad: String(req.n) };
              if (i % 16 === 0) await new Promise((resolve) => setImmediate(resolve));
            }
          } finally {
            active--;
          }
        },
        async sum(requests, ctx) {
          enter(ctx.peer);
          let total = 0;
          let count = 0;
          for await (const { n } of requests) {
            total += n;
            count++;
          }
          active--;
          return { total, count };
        },
        async *chat(requests, ctx) {
          enter(ctx.peer);
          try {
            for await (const { text } of requests) yield { text: `re:${text}` };
          } finally {
            active--;
          }
        },
      },
      { poolSize: 1 },
    );
    const STREAMS = 30;
    const counts = range(STREAMS).map(async (k) => {
      const n = 200 + k; // a different length per stream: a misrouted message shows
      const { items, error } = await drain(client.count({ n }));
      expect(error).toBeUndefined();
      expect(items.map((m) => m.i)).toEqual(range(n));
      expect(items.every((m) => m.pad === String(n))).toBe(true);
    });
    const sums = range(STREAMS).map(async (k) => {
      async function* slow() {
        for (let j = 0; j < 100; j++) {
          yield { n: k };
          if (j % 10 === 0) await new Promise((resolve) => setImmediate(resolve));
        }
      }
      await expect(client.sum(slow())).resolves.toEqual({ total: 100 * k, count: 100 });
    });
    const chats = range(STREAMS).map(async (k) => {
      const texts = range(100).map((j) => `${k}.${j}`);
      const { items, error } = await drain(client.chat(from(texts.map((text) => ({ text })))));
      expect(error).toBeUndefined();
      expect(items.map((m) => m.text)).toEqual(texts.map((t) => `re:${t}`));
    });
    await Promise.all([...counts, ...sums, ...chats]);
    expect(peers.size).toBe(1); // one connection carried them all
    expect(maxActive).toBeGreaterThan(STREAMS); // and they really were in flight at the same time
  });
});
