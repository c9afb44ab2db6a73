/**
 * Every protocol opens its server calls through one door: a server interceptor sees the same call
 * (shape, handler context, call context, deadline) over Weft TCP and over gRPC.
 */
import {
  createClient,
  createServer,
  createTcpTransport,
  currentCallContext,
  type HandlerContext,
  type Interceptor,
  type Transport,
} from "@weft/core";
import { afterEach, describe, expect, it } from "vitest";
import { createGrpcTransport, listenGrpc } from "../../src/index.ts";
import { CatalogService, catalogImpl, newObserved } from "./fixtures.ts";

/** What the interceptor saw of one call, in terms that must not depend on the protocol. */
interface Shape {
  keys: string[];
  symbols: number;
  side: string;
  path: string;
  header: string | undefined;
  budget: number | undefined;
  contextPath: string | undefined;
  contextSharesDeadline: boolean;
  contextSharesSignal: boolean;
  handlerSharesDeadline: boolean;
  handlerSharesSignal: boolean;
  handlerPeerIsCallPeer: boolean;
  propagated: Record<string, string>;
}

describe("one door for every server call", () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function start(): Promise<{ shapes: Shape[]; transports: Transport[] }> {
    const shapes: Shape[] = [];
    const handlerContexts = new WeakMap<AbortSignal, HandlerContext>();
    const record: Interceptor = (next) => async (call) => {
      const context = currentCallContext();
      const result = await next(call);
      const ctx = handlerContexts.get(call.signal);
      shapes.push({
        keys: Object.keys(call).sort(),
        symbols: Object.getOwnPropertySymbols(call).length,
        side: call.side,
        path: call.method.path,
        header: call.headers.get("x-test"),
        // whole seconds: what a 60 s budget leaves after travelling, on either protocol
        budget: call.deadline === undefined ? undefined : Math.round((call.deadline - Date.now()) / 1000),
        contextPath: context?.path,
        contextSharesDeadline: context?.deadline === call.deadline,
        contextSharesSignal: context?.signal === call.signal,
        handlerSharesDeadline: ctx?.deadline === call.deadline,
        handlerSharesSignal: ctx?.signal === call.signal,
        handlerPeerIsCallPeer: ctx !== undefined && ctx.peer === call.peer && typeof ctx.peer === "string",
        propagated: context?.propagate.toJSON() ?? {},
      });
      return result;
    };
    const server = createServer({ onError: () => {}, interceptors: [record] });
    const impl = catalogImpl(newObserved());
    server.register(CatalogService, {
      ...impl,
      lookup(req, ctx) {
        handlerContexts.set(ctx.signal, ctx);
        return impl.lookup(req, ctx);
      },
    });
    const tcp = await server.listen();
    const grpc = await listenGrpc(server);
    const transports = [
      createTcpTransport({ address: `127.0.0.1:${tcp.port}` }),
      createGrpcTransport({ address: `127.0.0.1:${grpc.port}` }),
    ];
    cleanups.push(async () => {
      for (const t of transports) await t.close();
      await server.shutdown({ timeoutMs: 1000 });
      await grpc.close();
    });
    return { shapes, transports };
  }

  it("the interceptor sees the same call shape, contexts and deadline over Weft TCP and gRPC", async () => {
    const { shapes, transports } = await start();
    for (const transport of transports) {
      await createClient(CatalogService, transport).lookup(
        { sku: "A-1" },
        { timeoutMs: 60_000, headers: { "x-test": "same", traceparent: "00-abc-def-01" } },
      );
      await createClient(CatalogService, transport).lookup({ sku: "A-2" });
    }
    expect(shapes).toHaveLength(4);
    const [tcpWithDeadline, tcpWithout, grpcWithDeadline, grpcWithout] = shapes;
    expect(grpcWithDeadline).toEqual(tcpWithDeadline);
    expect(grpcWithout).toEqual(tcpWithout);
    expect(tcpWithDeadline).toMatchObject({
      side: "server",
      path: "/catalog.v1.Catalog/Lookup",
      header: "same",
      budget: 60,
      contextPath: "/catalog.v1.Catalog/Lookup",
      contextSharesDeadline: true,
      contextSharesSignal: true,
      handlerSharesDeadline: true,
      handlerSharesSignal: true,
      handlerPeerIsCallPeer: true,
      propagated: { traceparent: "00-abc-def-01" },
    });
    expect(tcpWithout).toMatchObject({ budget: undefined, header: undefined, propagated: {} });
  });
});
