import { createServer as createH2Server } from "node:http2";
import * as grpc from "@grpc/grpc-js";
import * as loader from "@grpc/proto-loader";
import {
  Code,
  createClient,
  createMemoryRegistry,
  createServer,
  createTcpTransport,
  type Server,
  type WeftError,
} from "@weft/core";
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  addHealth,
  createGrpcHandler,
  createGrpcTransport,
  HealthService,
  listenGrpc,
} from "../../src/index.ts";
import { type AnyClient, CatalogService, catalogClient, catalogImpl, newObserved, root } from "./fixtures.ts";

function healthClient(address: string): AnyClient {
  const def = loader.loadSync("grpc/health/v1/health.proto", {
    includeDirs: [`${root}packages/grpc/proto`],
    enums: String,
    defaults: true,
  });
  const pkg = grpc.loadPackageDefinition(def) as AnyClient;
  return new pkg.grpc.health.v1.Health(address, grpc.credentials.createInsecure());
}

function check(client: AnyClient, service: string): Promise<string> {
  return new Promise((resolve, reject) =>
    client.Check({ service }, (e: Error | null, r: { status: string }) =>
      e ? reject(e) : resolve(r.status),
    ),
  );
}

/** Reads a Watch stream message by message. */
function watcher(client: AnyClient, service: string) {
  const call = client.Watch({ service });
  const queue: string[] = [];
  const waiters: Array<(s: string) => void> = [];
  call.on("data", (r: { status: string }) => {
    const w = waiters.shift();
    if (w) w(r.status);
    else queue.push(r.status);
  });
  const ended = new Promise<grpc.StatusObject>((resolve) => call.on("status", resolve));
  call.on("error", () => {});
  return {
    next: () =>
      new Promise<string>((resolve) => (queue.length > 0 ? resolve(queue.shift()!) : waiters.push(resolve))),
    ended,
    cancel: () => call.cancel(),
  };
}

describe("grpc.health.v1.Health", () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function start(): Promise<{ server: Server; address: string; health: ReturnType<typeof addHealth> }> {
    const observed = newObserved();
    const server = createServer({ onError: () => {} });
    server.register(CatalogService, catalogImpl(observed));
    const health = addHealth(server);
    const listener = await listenGrpc(server);
    cleanups.push(async () => {
      observed.releaseFeed.resolve();
      await server.shutdown({ timeoutMs: 1000 });
      await listener.close();
    });
    return { server, address: `127.0.0.1:${listener.port}`, health };
  }

  it("Check: SERVING for the server and each registered service, NOT_FOUND for others; List", async () => {
    const { address, health } = await start();
    const client = healthClient(address);
    cleanups.push(() => client.close());
    expect(await check(client, "")).toBe("SERVING");
    expect(await check(client, "catalog.v1.Catalog")).toBe("SERVING");
    expect(await check(client, "grpc.health.v1.Health")).toBe("SERVING");
    const error = await check(client, "nope.Nope").catch((e: grpc.ServiceError) => e);
    expect((error as grpc.ServiceError).code).toBe(grpc.status.NOT_FOUND);
    health.setStatus("catalog.v1.Catalog", "NOT_SERVING");
    expect(await check(client, "catalog.v1.Catalog")).toBe("NOT_SERVING");
    const list = await new Promise<{ statuses: Record<string, { status: string }> }>((resolve, reject) =>
      client.List({}, (e: Error | null, r: { statuses: Record<string, { status: string }> }) =>
        e ? reject(e) : resolve(r),
      ),
    );
    expect(list.statuses[""]?.status).toBe("SERVING");
    expect(list.statuses["catalog.v1.Catalog"]?.status).toBe("NOT_SERVING");
  });

  it("registered: shutdown deregisters (advertising the gRPC address), then NOT_SERVING for every service while still serving, then drains", async () => {
    const { server, address } = await start();
    const registry = createMemoryRegistry();
    await server.registerWith(registry, { env: {} });
    expect((await registry.list("catalog.v1.Catalog"))[0]?.addresses).toEqual({ grpc: address });
    const client = healthClient(address);
    cleanups.push(() => client.close());
    const leaving = new Promise<void>((resolve) =>
      server.onStateChange((state) => state === "leaving" && resolve()),
    );
    expect(await check(client, "")).toBe("SERVING"); // connected before the clock is faked
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
    const stopped = server.shutdown({ deregisterDelayMs: 60_000 });
    await leaving;
    expect(await registry.list("catalog.v1.Catalog")).toEqual([]);
    for (const service of ["", "catalog.v1.Catalog", "grpc.health.v1.Health"])
      expect(await check(client, service)).toBe("NOT_SERVING");
    expect(server.state).toBe("leaving");
    await vi.advanceTimersByTimeAsync(60_000);
    vi.useRealTimers();
    await stopped;
    expect(server.state).toBe("stopped");
  });

  it("is an ordinary Weft service: the Weft gRPC transport (or TCP) can check it too", async () => {
    const { address } = await start();
    const transport = createGrpcTransport({ address });
    cleanups.push(() => transport.close());
    const reply = await createClient(HealthService, transport).check({ service: "" });
    expect(reply.status).toBe(1); // SERVING
  });

  it("Watch streams every change, then NOT_SERVING when shutdown begins, and ends without holding it up", async () => {
    const { server, address, health } = await start();
    const client = healthClient(address);
    cleanups.push(() => client.close());
    const all = watcher(client, "");
    const one = watcher(client, "catalog.v1.Catalog");
    const unknown = watcher(client, "nope.Nope");
    expect(await all.next()).toBe("SERVING");
    expect(await one.next()).toBe("SERVING");
    expect(await unknown.next()).toBe("SERVICE_UNKNOWN");
    health.setStatus("catalog.v1.Catalog", "NOT_SERVING");
    expect(await one.next()).toBe("NOT_SERVING");
    health.setStatus("catalog.v1.Catalog", "SERVING");
    expect(await one.next()).toBe("SERVING");
    unknown.cancel();
    const shutdown = server.shutdown({ timeoutMs: 5000 });
    expect(await all.next()).toBe("NOT_SERVING");
    expect(await one.next()).toBe("NOT_SERVING");
    expect((await all.ended).code).toBe(grpc.status.OK);
    expect((await one.ended).code).toBe(grpc.status.OK);
    expect(await shutdown).toEqual({ cancelled: 0 });
  });

  it("a Check reaching a draining server is answered NOT_SERVING, while other new calls are refused", async () => {
    // Mounted on our own HTTP/2 server, which (unlike listenGrpc) keeps its connections open while
    // the Weft server drains: calls can still arrive.
    const observed = newObserved();
    const server = createServer({ onError: () => {} });
    server.register(CatalogService, catalogImpl(observed));
    addHealth(server);
    const h2 = createH2Server();
    createGrpcHandler(server).attach(h2);
    await new Promise<void>((resolve) => h2.listen(0, "127.0.0.1", resolve));
    const address = `127.0.0.1:${(h2.address() as { port: number }).port}`;
    const health = healthClient(address);
    const catalog = catalogClient(address);
    cleanups.push(async () => {
      health.close();
      catalog.close();
      observed.releaseFeed.resolve();
      await server.shutdown({ timeoutMs: 1000 });
      h2.close();
    });
    // an open stream keeps the server draining until it is released
    const feed = catalog.WatchPrices({ sku: "A", ticks: -1 });
    const feedDone = new Promise((resolve) => feed.on("status", resolve));
    feed.on("data", () => {});
    await observed.feedStarted.promise;
    expect(await check(health, "")).toBe("SERVING");
    const shutdown = server.shutdown({ timeoutMs: 5000 });
    expect(server.state).toBe("draining");
    expect(await check(health, "")).toBe("NOT_SERVING");
    expect(await check(health, "catalog.v1.Catalog")).toBe("NOT_SERVING");
    const refused = await new Promise<grpc.ServiceError>((resolve) =>
      catalog.Lookup({ sku: "A" }, { deadline: Date.now() + 2000 }, (e: grpc.ServiceError) => resolve(e)),
    );
    expect([grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED]).toContain(refused.code);
    observed.releaseFeed.resolve();
    await feedDone;
    expect(await shutdown).toEqual({ cancelled: 0 });
  });

  it("over Weft TCP a draining server refuses a new Check like any call (only the HTTP front-ends answer it)", async () => {
    const observed = newObserved();
    const server = createServer({ onError: () => {} });
    server.register(CatalogService, catalogImpl(observed));
    addHealth(server);
    const tcp = await server.listen();
    const transport = createTcpTransport({
      address: `127.0.0.1:${tcp.port}`,
      reconnect: { maxDelayMs: 100 },
    });
    cleanups.push(async () => {
      observed.releaseFeed.resolve();
      await transport.close();
      await server.shutdown({ timeoutMs: 1000 });
    });
    const health = createClient(HealthService, transport);
    expect((await health.check({ service: "" })).status).toBe(1); // SERVING
    // an open stream keeps the server draining until it is released
    const feed = createClient(CatalogService, transport).watchPrices({ sku: "A", ticks: -1 });
    const feedDone = (async () => {
      for await (const _ of feed);
    })();
    await observed.feedStarted.promise;
    const shutdown = server.shutdown({ timeoutMs: 5000 });
    expect(server.state).toBe("draining");
    const refused = await health.check({ service: "" }).catch((e: unknown) => e as WeftError);
    expect((refused as WeftError).code).toBe(Code.UNAVAILABLE);
    observed.releaseFeed.resolve();
    await feedDone;
    expect(await shutdown).toEqual({ cancelled: 0 });
  });
});
