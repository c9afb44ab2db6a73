import { afterEach, describe, expect, it } from "vitest";
import {
  Code,
  createClient,
  createMemoryTransport,
  createServer,
  type Interceptor,
  type Server,
  type Transport,
  WeftError,
} from "../../src/index.ts";
import { aborted, deferred } from "../deferred.ts";
import { Echo } from "../fixtures.ts";

const servers: Server[] = [];
const transports: Transport[] = [];
afterEach(async () => {
  await Promise.all(transports.splice(0).map((t) => t.close()));
  await Promise.all(servers.splice(0).map((s) => s.shutdown({ timeoutMs: 1000 })));
});

/** An Echo server, never listening on a socket, and a client talking to it through memory. */
function inMemory(interceptors: Interceptor[] = []) {
  const notified: string[] = [];
  const notifiedOnce = deferred<string>();
  const cancelled = deferred<unknown>();
  const started = deferred();
  const server = createServer({ onError: () => {}, interceptors });
  server.register(Echo, {
    echo: async (req, ctx) => {
      if (req.text === "fail") throw new WeftError(Code.NOT_FOUND, "no such thing", { reason: "MISSING" });
      if (req.text === "hang") {
        started.resolve();
        cancelled.resolve(await aborted(ctx.signal));
      }
      ctx.responseHeaders.set("x-via", ctx.peer ?? "?");
      ctx.responseTrailers.set("x-done", "yes");
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
      for await (const r of reqs) yield { text: r.text.split("").reverse().join("") };
    },
    notify: (req) => {
      notified.push(req.event);
      notifiedOnce.resolve(req.event);
    },
  });
  servers.push(server);
  const transport = createMemoryTransport(server);
  transports.push(transport);
  return { server, client: createClient(Echo, transport), notified, notifiedOnce, cancelled, started };
}

async function* from<T>(items: T[]) {
  for (const item of items) yield item;
}

describe("the in-memory transport runs the real protocol", () => {
  it("unary, with headers and trailers", async () => {
    const { client } = inMemory();
    let header: Record<string, string> = {};
    let trailer: Record<string, string> = {};
    const reply = await client.echo(
      { text: "hi" },
      {
        headers: { "x-req": "1" },
        onHeader: (h) => (header = h.toJSON()),
        onTrailer: (t) => (trailer = t.toJSON()),
      },
    );
    expect(reply).toEqual({ text: "hi", headers: { "x-req": "1" } });
    expect(header).toEqual({ "x-via": "memory" });
    expect(trailer).toEqual({ "x-done": "yes" });
  });

  it("server streaming", async () => {
    const { client } = inMemory();
    const got: unknown[] = [];
    for await (const m of client.count({ n: 4 })) got.push(m);
    expect(got).toEqual([{ i: 0 }, { i: 1 }, { i: 2 }, { i: 3 }]);
  });

  it("client streaming", async () => {
    const { client } = inMemory();
    await expect(client.sum(from([{ n: 5 }, { n: 6 }, { n: 7 }]))).resolves.toEqual({ total: 18, count: 3 });
  });

  it("bidi streaming", async () => {
    const { client } = inMemory();
    const got: unknown[] = [];
    for await (const m of client.chat(from([{ text: "abc" }, { text: "weft" }]))) got.push(m);
    expect(got).toEqual([{ text: "cba" }, { text: "tfew" }]);
  });

  it("one-way", async () => {
    const { client, notified, notifiedOnce } = inMemory();
    await expect(client.notify({ event: "e1" })).resolves.toBeUndefined();
    expect(await notifiedOnce.promise).toBe("e1");
    expect(notified).toEqual(["e1"]);
  });

  it("errors", async () => {
    const { client } = inMemory();
    await expect(client.echo({ text: "fail" })).rejects.toMatchObject({
      code: Code.NOT_FOUND,
      reason: "MISSING",
      rawMessage: "no such thing",
    });
  });

  it("cancellation", async () => {
    const { client, started, cancelled } = inMemory();
    const controller = new AbortController();
    const outcome = client.echo({ text: "hang" }, { signal: controller.signal }).catch((e: unknown) => e);
    await started.promise;
    controller.abort();
    expect(await outcome).toMatchObject({ code: Code.CANCELLED });
    expect(await cancelled.promise).toMatchObject({ code: Code.CANCELLED });
  });

  it("server interceptors", async () => {
    const seen: string[] = [];
    const { client } = inMemory([
      (next) => async (call) => {
        seen.push(`${call.side} ${call.method.name} ${call.peer}`);
        return next(call);
      },
    ]);
    await client.echo({ text: "x" });
    expect(seen).toEqual(["server echo memory"]);
  });
});

describe("the in-memory transport's connections", () => {
  it("fail at once with UNAVAILABLE to a server that is shutting down or stopped", async () => {
    const { server } = inMemory();
    await server.shutdown();
    const transport = createMemoryTransport(server);
    transports.push(transport);
    // before: the server destroyed its side, the client's never learnt, and the call waited forever
    const e = (await createClient(Echo, transport)
      .echo({ text: "x" })
      .catch((e: unknown) => e)) as WeftError;
    expect(e).toBeInstanceOf(WeftError);
    expect(e.code).toBe(Code.UNAVAILABLE);
  });

  it("close on both sides at once: closing the client aborts the server's handler", async () => {
    const { server, client, started, cancelled } = inMemory();
    const outcome = client.echo({ text: "hang" }).catch((e: unknown) => e);
    await started.promise;
    expect(server.inFlight).toBe(1);
    await transports.pop()!.close();
    expect(await outcome).toMatchObject({ code: Code.UNAVAILABLE, reason: "TRANSPORT_CLOSED" });
    expect(await cancelled.promise).toMatchObject({ code: Code.UNAVAILABLE, reason: "CONNECTION_CLOSED" });
    expect(server.inFlight).toBe(0);
  });
});
