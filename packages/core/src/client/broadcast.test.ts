import { describe, expect, expectTypeOf, it } from "vitest";
import { aborted, deferred } from "../../test/deferred.ts";
import { FakeNode, fakeNodes, instance } from "../../test/fake-node.ts";
import { Cluster } from "../cluster/cluster.ts";
import { createMemoryTransport } from "../cluster/tcp-transport.ts";
import { messageType } from "../codec/json-codec.ts";
import { Code } from "../errors/code.ts";
import { isFromCall } from "../errors/downstream.ts";
import { WeftError } from "../errors/weft-error.ts";
import type { Call, Interceptor } from "../interceptor/call.ts";
import type { HandlerContext } from "../server/handler.ts";
import { createServer } from "../server/server.ts";
import { clientStreaming, defineService, oneway, serverStreaming, unary } from "../service/service.ts";
import { broadcast, multicast, type NodeOutcome } from "./broadcast.ts";
import { createClient } from "./client.ts";

const Svc = defineService("test.Svc", {
  get: unary(messageType<{ n: number }>(), messageType<string>()),
  log: oneway(messageType<{ n: number }>()),
  watch: serverStreaming(messageType<{ n: number }>(), messageType<string>()),
  sum: clientStreaming(messageType<{ n: number }>(), messageType<string>()),
});

/** An interceptor recording every call it sees. */
function recorder(): { seen: Call[]; interceptor: Interceptor } {
  const seen: Call[] = [];
  const interceptor: Interceptor = (next) => (call) => {
    seen.push(call);
    return next(call);
  };
  return { seen, interceptor };
}

describe("broadcast", () => {
  it("lists every node's outcome in node order, each call built as the client builds one", async () => {
    const [a, b, c] = fakeNodes("a", "b", "c");
    b!.failWith = new WeftError(Code.INTERNAL, "b broke");
    const client = createClient(Svc, new Cluster([a!, b!, c!]), {
      timeoutMs: 1000,
      headers: { "x-client": "1" },
      serializer: "json",
    });
    const before = Date.now();
    const outcomes = await broadcast(client, "get", { n: 1 }, { headers: { "x-call": "2" } });
    expect(outcomes).toEqual([
      { node: "a", instance: a!.instance, ok: true, message: "a" },
      {
        node: "b",
        instance: b!.instance,
        ok: false,
        error: expect.objectContaining({ code: Code.INTERNAL }),
      },
      { node: "c", instance: c!.instance, ok: true, message: "c" },
    ]);
    for (const node of [a!, b!, c!]) {
      const { call } = node.calls[0]!;
      expect(call).toMatchObject({ side: "client", stream: false, message: { n: 1 }, serializer: "json" });
      expect(call.method.path).toBe("/test.Svc/get");
      expect([call.headers.get("x-client"), call.headers.get("x-call")]).toEqual(["1", "2"]);
      expect(call.deadline).toBeGreaterThanOrEqual(before + 1000); // the client's default budget
      expect(call.deadline).toBeLessThanOrEqual(Date.now() + 1000);
    }
    expectTypeOf(outcomes).toEqualTypeOf<NodeOutcome<string>[]>();
  });

  it("runs the client's interceptors once per node, each over a call of its own", async () => {
    const nodes = fakeNodes("a", "b", "c");
    const { seen, interceptor } = recorder();
    let n = 0;
    const numbering: Interceptor = (next) => (call) => {
      call.headers.set("x-seq", String(++n));
      return next(call);
    };
    const client = createClient(Svc, new Cluster(nodes), {
      interceptors: [recorder().interceptor, interceptor, numbering],
    });
    const outcomes = await broadcast(client, "log", { n: 1 });
    expect(outcomes.map((o) => [o.node, o.ok, o.ok && o.message])).toEqual([
      ["a", true, undefined],
      ["b", true, undefined],
      ["c", true, undefined],
    ]);
    expect(seen).toHaveLength(3);
    expect(new Set(seen).size).toBe(3);
    expect(new Set(seen.map((c) => c.headers)).size).toBe(3);
    // what an interceptor wrote for one node did not reach another
    expect(nodes.map((node) => node.calls[0]!.call.headers.get("x-seq"))).toEqual(["1", "2", "3"]);
    expectTypeOf(outcomes).toEqualTypeOf<NodeOutcome<undefined>[]>();
  });

  it("marks every error as from a call: each node's, and the rejection when no node is left", async () => {
    const [a] = fakeNodes("a");
    a!.failWith = new WeftError(Code.UNAVAILABLE, "down");
    const client = createClient(Svc, new Cluster([a!]));
    const [outcome] = await broadcast(client, "get", { n: 1 });
    expect(outcome).toMatchObject({ ok: false, error: { code: Code.UNAVAILABLE } });
    expect(isFromCall((outcome as { error: WeftError }).error)).toBe(true);
    const failing: Interceptor = () => () => Promise.reject(new Error("interceptor broke"));
    const [broken] = await broadcast(
      createClient(Svc, new Cluster([a!]), { interceptors: [failing] }),
      "get",
      {
        n: 1,
      },
    );
    expect(broken).toMatchObject({ ok: false, error: { code: Code.UNKNOWN } });
    expect(isFromCall((broken as { error: WeftError }).error)).toBe(true);

    const grouped = createClient(Svc, new Cluster([a!]));
    const rejection = await multicast(grouped, "get", { n: 1 }, { group: "none" }).catch((e: unknown) => e);
    expect(rejection).toMatchObject({ code: Code.UNAVAILABLE, reason: "NO_AVAILABLE_NODE" });
    expect(isFromCall(rejection)).toBe(true);
    const badSerializer = await broadcast(grouped, "get", { n: 1 }, { serializer: "protobuf" }).catch(
      (e: unknown) => e,
    );
    expect(badSerializer).toMatchObject({ reason: "UNSUPPORTED_SERIALIZER" });
    expect(isFromCall(badSerializer)).toBe(true);
  });

  it("throws ConfigError for a client not over a cluster, not a client, or a streaming method", async () => {
    const server = createServer();
    const overMemory = createClient(Svc, createMemoryTransport(server));
    // the memory transport is a cluster: its one node's outcome, not a ConfigError
    expect(await broadcast(overMemory, "get", { n: 1 })).toMatchObject([{ node: "memory:1" }]);
    const plain = createClient(Svc, {
      call: () => Promise.reject(new Error("unused")),
      close: async () => {},
    });
    expect(() => broadcast(plain, "get", { n: 1 })).toThrow(/"transport"/);
    expect(() => broadcast({ get: () => Promise.resolve("") }, "get", { n: 1 })).toThrow(/"client"/);
    const cluster = createClient(Svc, new Cluster(fakeNodes("a")));
    // @ts-expect-error streaming methods cannot be broadcast
    expect(() => broadcast(cluster, "watch", { n: 1 })).toThrow(/"method"/);
    expect(() => multicast(cluster, "get", { n: 1 }, { group: "" })).toThrow(/"group"/);
    // @ts-expect-error streaming methods cannot be broadcast
    expect(() => broadcast(cluster, "sum", { n: 1 })).toThrow(/"method"/);
  });
});

describe("multicast", () => {
  it("reaches the instances of one group only (by the label given)", async () => {
    const a1 = new FakeNode("a1", instance("a1", { labels: { group: "a", ring: "x" } }));
    const a2 = new FakeNode("a2", instance("a2", { labels: { group: "a" } }));
    const b1 = new FakeNode("b1", instance("b1", { labels: { group: "b", ring: "x" } }));
    const { seen, interceptor } = recorder();
    const client = createClient(Svc, new Cluster([a1, b1, a2]), { interceptors: [interceptor] });
    const outcomes = await multicast(client, "log", { n: 1 }, { group: "a" });
    expect(outcomes.map((o) => [o.node, o.ok])).toEqual([
      ["a1", true],
      ["a2", true],
    ]);
    expect(b1.calls).toHaveLength(0);
    expect(seen).toHaveLength(2);
    const ring = await multicast(client, "get", { n: 2 }, { group: "x", label: "ring" });
    expect(ring.map((o) => o.node)).toEqual(["a1", "b1"]);
  });
});

describe("inside a handler", () => {
  it("inherits the handler's deadline, cancellation and propagated headers", async () => {
    const nodes = fakeNodes("a", "b");
    for (const node of nodes) node.hold = true;
    const reached = deferred();
    let count = 0;
    const client = createClient(Svc, new Cluster(nodes), {
      interceptors: [
        (next) => (call) => {
          if (++count === nodes.length) reached.resolve();
          return next(call);
        },
      ],
    });
    const handled = deferred<{ ctx: HandlerContext; outcomes: NodeOutcome<string>[] }>();
    const server = createServer({ onError: () => {} });
    server.register(Svc, {
      get: async (_req, ctx) => {
        const outcomes = await broadcast(client, "get", { n: 1 });
        handled.resolve({ ctx, outcomes });
        return "";
      },
      log: () => {},
      watch: async function* () {},
      sum: async () => "",
    });
    const transport = createMemoryTransport(server);
    const caller = createClient(Svc, transport);
    const controller = new AbortController();
    const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const outer = caller
      .get({ n: 0 }, { timeoutMs: 60_000, signal: controller.signal, headers: { traceparent } })
      .catch((e: unknown) => e);
    await reached.promise;
    controller.abort();
    const { ctx, outcomes } = await handled.promise;
    for (const node of nodes) {
      const { call } = node.calls[0]!;
      expect(call.deadline).toBe(ctx.deadline);
      expect(call.headers.get("traceparent")).toBe(traceparent);
      expect(call.signal.aborted).toBe(true);
      await aborted(call.signal);
    }
    expect(outcomes.map((o) => o.ok || o.error.code)).toEqual([Code.CANCELLED, Code.CANCELLED]);
    expect(await outer).toMatchObject({ code: Code.CANCELLED });
    await transport.close();
    await server.shutdown({ timeoutMs: 1000 });
  });
});
