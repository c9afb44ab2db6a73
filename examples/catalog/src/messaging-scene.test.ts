import { createServer, SILENT_LOGGER } from "@weft/core";
import { type Broker, memoryBroker } from "@weft/messaging";
import { brokerView } from "@weft/testing";
import { afterAll, describe, expect, it } from "vitest";
import { startCatalogMessaging } from "./catalog-messaging.ts";
import { createCatalog } from "./catalog-service.ts";
import { CatalogService } from "./gen/catalog/v1/catalog_weft.ts";
import { messagingScene, type SceneServer } from "./messaging-scene.ts";
import { Stock } from "./stock.ts";

// one in-process broker the servers and the scene reach through views of their own (the scene
// closes its view)
const shared = memoryBroker();
afterAll(() => shared.close());
const view = (): Broker => brokerView(shared);

describe("the demo's messaging scene, in one process on the memory broker", () => {
  it("prints every count as expected", async () => {
    const stops: (() => Promise<void>)[] = [];
    const servers: SceneServer[] = [];
    for (const id of ["catalog-1", "catalog-2", "catalog-3"]) {
      let messaging: Awaited<ReturnType<typeof startCatalogMessaging>> | undefined;
      const catalog = createCatalog(
        () => {},
        (sku) => messaging?.viewed(sku),
      );
      messaging = await startCatalogMessaging(view(), id, catalog.priceOf, SILENT_LOGGER);
      const server = createServer({ logger: SILENT_LOGGER });
      server.register(CatalogService, catalog.v1);
      server.register(Stock, messaging.stock);
      const { port } = await server.listen({ host: "127.0.0.1", port: 0 });
      servers.push({ id, port });
      const m = messaging;
      stops.push(async () => {
        await server.shutdown({ timeoutMs: 1_000 });
        await m.close();
      });
    }
    const lines: string[] = [];
    let ok: boolean;
    try {
      ok = await messagingScene((l) => lines.push(l), view(), servers);
    } finally {
      await Promise.all(stops.map((stop) => stop()));
    }
    expect(ok, lines.join("\n")).toBe(true);
    // memory shares a group's messages round-robin: the counts are exact here
    expect(lines).toContain(
      "[messaging] 30 catalog.stock.reserve commands to queue group catalog: handled by catalog-1=10 catalog-2=10 catalog-3=10",
    );
    expect(lines).toContain(
      "[messaging] 30 outcome events to group shop (30 orders, one each): handled by shop-1=15 shop-2=15",
    );
    expect(lines.at(-1)).toBe(
      "[messaging] totals: events consumed by analytics 41 (9 item.viewed, 32 stock.reserved); outcome events 32 (31 reserved, 1 failed); dead letters 1",
    );
  });
});
