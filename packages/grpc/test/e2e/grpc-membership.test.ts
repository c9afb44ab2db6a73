/**
 * The gRPC transport following a registry: two Weft servers serving gRPC (`listenGrpc`), registered
 * in a memory registry with their `addresses.grpc`; the transport follows the service on that
 * registry (`discoveryFrom`) over real HTTP/2 connections.
 */
import { createClient, createMemoryRegistry } from "@weft/core";
import { afterEach, describe, expect, it } from "vitest";
import { createGrpcTransport } from "../../src/index.ts";
import { CatalogService, type Harness, startCatalog } from "./fixtures.ts";

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of cleanup.splice(0).reverse()) await close();
});

describe("createGrpcTransport over a registry", () => {
  it("spreads calls over the instances advertising gRPC and follows a deregistration", async () => {
    const registry = createMemoryRegistry();
    cleanup.push(() => registry.close());
    const harnesses: Harness[] = [await startCatalog(), await startCatalog()];
    for (const h of harnesses) cleanup.push(() => h.close());
    const [a, b] = harnesses as [Harness, Harness];
    await registry.register({ services: ["catalog.v1.Catalog"], addresses: { grpc: a.address } });
    const rb = await registry.register({ services: ["catalog.v1.Catalog"], addresses: { grpc: b.address } });
    // an instance with only a Weft TCP address is not a node of the gRPC transport
    await registry.register({ services: ["catalog.v1.Catalog"], addresses: { weft: "127.0.0.1:1" } });

    const transport = createGrpcTransport({ discoveryFrom: registry, service: "catalog.v1.Catalog" });
    cleanup.push(() => transport.close());
    const client = createClient(CatalogService, transport);
    for (let i = 0; i < 10; i++) await client.lookup({ sku: `A-${i}` });
    expect(a.observed.lookups).toHaveLength(5);
    expect(b.observed.lookups).toHaveLength(5);

    await rb.deregister();
    await new Promise((resolve) => setImmediate(resolve));
    for (let i = 0; i < 10; i++) await client.lookup({ sku: `B-${i}` });
    expect(a.observed.lookups).toHaveLength(15);
    expect(b.observed.lookups).toHaveLength(5);
  });

  it("rejects a target together with baseUrl, and discoveryFrom without service", () => {
    const registry = createMemoryRegistry();
    expect(() => createGrpcTransport({ baseUrl: "http://127.0.0.1:1", target: "127.0.0.1:1" })).toThrow(
      /baseUrl/,
    );
    expect(() => createGrpcTransport({ discoveryFrom: registry })).toThrow(/service/);
  });
});
