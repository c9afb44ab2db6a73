/**
 * A gRPC node connects before it takes calls and backs off after a failed connection, as a Weft TCP
 * node does: over real HTTP/2 connections, one address of two refuses connections (a port nothing
 * listens on), one accepts TCP but never completes the TLS handshake.
 */
import { createServer as createNetServer, type Server as NetServer } from "node:net";
import {
  type Balancer,
  type BalancerNode,
  createClient,
  createMemoryRegistry,
  type Discovery,
  Reason,
  roundRobin,
} from "@weft/core";
import { afterEach, describe, expect, it } from "vitest";
import { createGrpcTransport } from "../../src/index.ts";
import { CatalogService, startCatalog } from "./fixtures.ts";

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of cleanup.splice(0).reverse()) await close();
});

/** A loopback port nothing listens on: bound once, then closed. */
async function refusingAddress(): Promise<string> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return `127.0.0.1:${port}`;
}

/** Round robin that keeps the node list of its last pick, to read the nodes' state. */
function watchingBalancer(): { balancer: Balancer; nodes: () => readonly BalancerNode[] } {
  const inner = roundRobin();
  let last: readonly BalancerNode[] = [];
  return {
    balancer: {
      feedback: false,
      pick(nodes, call) {
        last = nodes;
        return inner.pick(nodes, call);
      },
    },
    nodes: () => last,
  };
}

describe("GrpcNode connects and backs off", () => {
  it("sends every call to the live address, marks the refusing one backing off and asks discovery to refresh", async () => {
    const live = await startCatalog();
    cleanup.push(() => live.close());
    const dead = await refusingAddress();
    const registry = createMemoryRegistry();
    cleanup.push(() => registry.close());
    const service = "catalog.v1.Catalog";
    await registry.register({ id: "dead", services: [service], addresses: { grpc: dead } });
    await registry.register({ id: "live", services: [service], addresses: { grpc: live.address } });
    const refreshed: string[] = [];
    const discovery: Discovery = {
      list: (s) => registry.list(s),
      watch: (s) => registry.watch(s),
      refresh: (s) => refreshed.push(s),
    };
    const { balancer, nodes } = watchingBalancer();
    const transport = createGrpcTransport({
      discoveryFrom: discovery,
      service,
      balancer,
      reconnect: { initialDelayMs: 60_000, maxDelayMs: 60_000 },
    });
    cleanup.push(() => transport.close());
    const client = createClient(CatalogService, transport);

    const calls = 20;
    for (let i = 0; i < calls; i++) await client.lookup({ sku: `A-${i}` });
    expect(live.observed.lookups).toHaveLength(calls);
    const byAddress = new Map(nodes().map((n) => [n.address, n]));
    expect(byAddress.get(`http://${dead}`)?.backingOff).toBe(true);
    expect(byAddress.get(`http://${live.address}`)?.backingOff).toBe(false);
    // the connect failure asked the registry to re-read the service
    expect(refreshed.length).toBeGreaterThan(0);
    expect(new Set(refreshed)).toEqual(new Set([service]));
  });

  it("fails a call to a refusing address with UNAVAILABLE/CONNECTION_FAILED, then fails fast while backing off", async () => {
    const dead = await refusingAddress();
    const transport = createGrpcTransport({
      address: dead,
      reconnect: { initialDelayMs: 60_000, maxDelayMs: 60_000 },
    });
    cleanup.push(() => transport.close());
    const client = createClient(CatalogService, transport);
    const first = await client.lookup({ sku: "x" }).catch((e: unknown) => e);
    expect(first).toMatchObject({ code: 14, reason: Reason.CONNECTION_FAILED });
    expect(String((first as Error).message)).toMatch(/ECONNREFUSED/);
    const second = await client.lookup({ sku: "x" }).catch((e: unknown) => e);
    expect(second).toMatchObject({ code: 14, reason: Reason.CONNECTION_FAILED });
    expect(String((second as Error).message)).toMatch(/next attempt in \d+ ms/);
  });

  it("fails a connection that does not open within connectTimeoutMs with UNAVAILABLE/CONNECTION_FAILED", async () => {
    // accepts TCP, never answers the TLS handshake
    const silent: NetServer = createNetServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const sockets = new Set<import("node:net").Socket>();
    silent.on("connection", (s) => sockets.add(s));
    cleanup.push(async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => silent.close(resolve));
    });
    const { port } = silent.address() as { port: number };
    const transport = createGrpcTransport({ address: `127.0.0.1:${port}`, tls: {}, connectTimeoutMs: 200 });
    cleanup.push(() => transport.close());
    const started = performance.now();
    const error = await createClient(CatalogService, transport)
      .lookup({ sku: "x" })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 14, reason: Reason.CONNECTION_FAILED });
    expect(String((error as Error).message)).toMatch(/connect timeout after 200 ms/);
    expect(performance.now() - started).toBeLessThan(2_000);
  });
});
