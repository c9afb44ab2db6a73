/**
 * Type tests for the public client and server typings. `tsc` checks this file (`npm run typecheck`);
 * every `@ts-expect-error` line must fail to compile, or the directive itself is an error. At run
 * time only the few lines outside never-called functions execute.
 */
import { describe, expectTypeOf, it } from "vitest";
import { z } from "zod";
import {
  type CallOptions,
  type Client,
  Code,
  type CodecType,
  createClient,
  createServer,
  defineService,
  type HandlerContext,
  type HandlerFor,
  type Interceptor,
  type MessageCodec,
  messageType,
  oneway,
  type rawBytes,
  type ServiceImpl,
  serverStreaming,
  type Transport,
  unary,
  WeftError,
} from "../src/index.ts";
import { Echo, type EchoReply, type EchoRequest } from "./fixtures.ts";

const transport: Transport = {
  call: () => Promise.reject(new Error("type tests make no calls")),
  close: () => Promise.resolve(),
};
const client = createClient(Echo, transport);

async function* stream<T>(items: T[]): AsyncIterable<T> {
  yield* items;
}

describe("client typings", () => {
  it("types each method by its kind", () => {
    expectTypeOf(client).toEqualTypeOf<Client<typeof Echo>>();
    expectTypeOf(client.echo).toEqualTypeOf<
      (request: EchoRequest, options?: CallOptions) => Promise<EchoReply>
    >();
    expectTypeOf(client.count).toEqualTypeOf<
      (
        request: { n: number; size?: number },
        options?: CallOptions,
      ) => AsyncIterable<{ i: number; pad?: string }>
    >();
    expectTypeOf(client.sum).toEqualTypeOf<
      (
        requests: AsyncIterable<{ n: number }>,
        options?: CallOptions,
      ) => Promise<{ total: number; count: number }>
    >();
    expectTypeOf(client.chat).toEqualTypeOf<
      (requests: AsyncIterable<{ text: string }>, options?: CallOptions) => AsyncIterable<{ text: string }>
    >();
    expectTypeOf(client.notify).toEqualTypeOf<
      (request: { event: string }, options?: CallOptions) => Promise<void>
    >();
  });

  it("has exactly the service's methods", () => {
    expectTypeOf<keyof typeof client>().toEqualTypeOf<"echo" | "count" | "sum" | "chat" | "notify">();
  });

  it("rejects wrong requests, misspelled methods and wrong stream elements", () => {
    // Never called: these lines exist for the compiler.
    const _ = () => {
      // @ts-expect-error text must be a string
      void client.echo({ text: 1 });
      // @ts-expect-error the request is required
      void client.echo();
      // @ts-expect-error unknown property in an object literal
      void client.echo({ text: "x", txt: "y" });
      // @ts-expect-error misspelled method
      void client.ecko({ text: "x" });
      // @ts-expect-error a client stream takes an AsyncIterable, not one message
      void client.sum({ n: 1 });
      // @ts-expect-error wrong element type of the request stream
      void client.sum(stream([{ n: "1" }]));
      // @ts-expect-error wrong element type of a bidi request stream
      void client.chat(stream([{ body: "x" }]));
      // @ts-expect-error a server stream is iterated, not awaited for a value with fields
      void client.count({ n: 1 }).i;
      // @ts-expect-error unknown serializer name
      void client.echo({ text: "x" }, { serializer: "xml" });
      // @ts-expect-error header values are strings
      void client.echo({ text: "x" }, { headers: { "x-n": 1 } });
      const reply = client.echo({ text: "x" });
      // @ts-expect-error the reply has no `txt`
      void reply.then((r) => r.txt);
    };
    expectTypeOf(_).toBeFunction();
  });

  it("infers message types from a Standard Schema", () => {
    const Item = messageType({ schema: z.object({ sku: z.string(), qty: z.number().default(1) }) });
    expectTypeOf(Item).toEqualTypeOf<MessageCodec<{ sku: string; qty: number }>>();
    const Shop = defineService("test.v1.Shop", { buy: unary(Item, messageType<{ ok: boolean }>()) });
    const shop = createClient(Shop, transport);
    expectTypeOf(shop.buy).parameter(0).toEqualTypeOf<{ sku: string; qty: number }>();
    expectTypeOf<CodecType<typeof rawBytes>>().toEqualTypeOf<Uint8Array>();
  });
});

describe("server typings", () => {
  it("infers each handler's parameters from the method kind", () => {
    createServer().register(Echo, {
      echo: (req, ctx) => {
        expectTypeOf(req).toEqualTypeOf<EchoRequest>();
        expectTypeOf(ctx).toEqualTypeOf<HandlerContext>();
        return { text: req.text };
      },
      count: async function* (req, ctx) {
        expectTypeOf(req).toEqualTypeOf<{ n: number; size?: number }>();
        expectTypeOf(ctx.signal).toEqualTypeOf<AbortSignal>();
        yield { i: 0 };
      },
      sum: async (reqs) => {
        expectTypeOf(reqs).toEqualTypeOf<AsyncIterable<{ n: number }>>();
        return { total: 0, count: 0 };
      },
      chat: async function* (reqs) {
        expectTypeOf(reqs).toEqualTypeOf<AsyncIterable<{ text: string }>>();
        for await (const r of reqs) yield r;
      },
      notify: (req) => {
        expectTypeOf(req).toEqualTypeOf<{ event: string }>();
      },
    });
  });

  it("gives each kind its handler signature", () => {
    type M = (typeof Echo)["methods"];
    expectTypeOf<HandlerFor<M["echo"]>>().toEqualTypeOf<
      (request: EchoRequest, ctx: HandlerContext) => EchoReply | Promise<EchoReply>
    >();
    expectTypeOf<HandlerFor<M["count"]>>().toEqualTypeOf<
      (
        request: { n: number; size?: number },
        ctx: HandlerContext,
      ) => AsyncIterable<{ i: number; pad?: string }>
    >();
    expectTypeOf<HandlerFor<M["sum"]>>().toEqualTypeOf<
      (
        requests: AsyncIterable<{ n: number }>,
        ctx: HandlerContext,
      ) => { total: number; count: number } | Promise<{ total: number; count: number }>
    >();
    expectTypeOf<HandlerFor<M["chat"]>>().toEqualTypeOf<
      (requests: AsyncIterable<{ text: string }>, ctx: HandlerContext) => AsyncIterable<{ text: string }>
    >();
    expectTypeOf<HandlerFor<M["notify"]>>().toEqualTypeOf<
      (request: { event: string }, ctx: HandlerContext) => void | Promise<void>
    >();
  });

  it("rejects wrong handlers", () => {
    const Small = defineService("test.v1.Small", {
      get: unary(messageType<{ id: string }>(), messageType<{ name: string }>()),
      list: serverStreaming(messageType<{ prefix: string }>(), messageType<{ name: string }>()),
      log: oneway(messageType<{ line: string }>()),
    });
    const ok: ServiceImpl<typeof Small> = {
      get: (req) => ({ name: req.id }),
      list: async function* (req) {
        yield { name: req.prefix };
      },
      log: () => {},
    };
    expectTypeOf(ok).toEqualTypeOf<ServiceImpl<typeof Small>>();

    const _ = () => {
      const server = createServer();
      // @ts-expect-error a handler is missing
      server.register(Small, { get: (req) => ({ name: req.id }), log: () => {} });
      server.register(Small, {
        ...ok,
        // @ts-expect-error wrong response type
        get: () => ({ title: "x" }),
      });
      server.register(Small, {
        ...ok,
        // @ts-expect-error reads a field the request does not have
        get: (req) => ({ name: req.name }),
      });
      server.register(Small, {
        ...ok,
        // @ts-expect-error a server-streaming handler returns an AsyncIterable, not an array
        list: () => [{ name: "a" }],
      });
      server.register(Small, {
        ...ok,
        // @ts-expect-error wrong stream element type
        list: async function* () {
          yield { name: 1 };
        },
      });
    };
    expectTypeOf(_).toBeFunction();
  });
});

describe("shared typings", () => {
  it("uses one interceptor type and typed error codes", () => {
    expectTypeOf<Interceptor>().parameter(0).returns.resolves.toHaveProperty("headers");
    expectTypeOf(new WeftError(Code.NOT_FOUND, "x").code).toEqualTypeOf<Code>();
    // @ts-expect-error 17 is not a status code
    const _bad = () => new WeftError(17, "x");
    expectTypeOf(_bad).toBeFunction();
  });
});
