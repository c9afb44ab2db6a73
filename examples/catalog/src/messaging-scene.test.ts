import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { redisStreamsBroker } from "@weft/broker-redis";
import { createServer, SILENT_LOGGER } from "@weft/core";
import { type Broker, memoryBroker } from "@weft/messaging";
import { brokerView } from "@weft/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCatalogMessaging } from "./catalog-messaging.ts";
import { createCatalog } from "./catalog-service.ts";
import { CatalogService } from "./gen/catalog/v1/catalog_weft.ts";
import { messagingScene, type SceneServer } from "./messaging-scene.ts";
import { Stock } from "./stock.ts";

/** Three catalog servers in this process, each with its broker connection; plays the scene against them. */
async function playScene(connect: () => Promise<Broker>): Promise<{ ok: boolean; lines: string[] }> {
  const stops: (() => Promise<void>)[] = [];
  const servers: SceneServer[] = [];
  const lines: string[] = [];
  try {
    for (const id of ["catalog-1", "catalog-2", "catalog-3"]) {
      let viewed = (_sku: string): void => {};
      const catalog = createCatalog(
        () => {},
        (sku) => viewed(sku),
      );
      const broker = await connect();
      const messaging = await startCatalogMessaging(broker, id, catalog.priceOf, SILENT_LOGGER);
      viewed = messaging.viewed;
      const server = createServer({ logger: SILENT_LOGGER });
      server.register(CatalogService, catalog.v1);
      server.register(Stock, messaging.stock);
      const { port } = await server.listen({ host: "127.0.0.1", port: 0 });
      servers.push({ id, port });
      stops.push(async () => {
        await server.shutdown({ timeoutMs: 1_000 });
        await messaging.close();
        await broker.close();
      });
    }
    const ok = await messagingScene((l) => lines.push(l), await connect(), servers);
    return { ok, lines };
  } finally {
    await Promise.all(stops.map((stop) => stop()));
  }
}

const TOTALS =
  "[messaging] totals: events consumed by analytics 41 (9 item.viewed, 32 stock.reserved); outcome events 32 (31 reserved, 1 failed); dead letters 1";

describe("the demo's messaging scene, in one process on the memory broker", () => {
  // one in-process broker the servers and the scene reach through views of their own
  const shared = memoryBroker();
  afterAll(() => shared.close());

  it("prints every count as expected", async () => {
    const { ok, lines } = await playScene(async () => brokerView(shared));
    expect(ok, lines.join("\n")).toBe(true);
    // memory shares a group's messages round-robin: the splits are exact here
    expect(lines).toContain(
      "[messaging] 30 catalog.stock.reserve commands to queue group catalog: handled by catalog-1=10 catalog-2=10 catalog-3=10",
    );
    expect(lines).toContain(
      "[messaging] 30 outcome events to group shop (30 orders, one each): handled by shop-1=15 shop-2=15",
    );
    expect(lines.at(-1)).toBe(TOTALS);
  });
});

describe("the demo's messaging scene on Redis Streams (the machine's Redis), as WEFT_BROKER=redis://… runs it", () => {
  const url = "redis://127.0.0.1:6379";
  // this run's keys only, deleted after
  const prefix = `weft-scene-${randomUUID().slice(0, 8)}:`;
  beforeAll(() => {
    execFileSync("bash", [fileURLToPath(new URL("../../../scripts/ensure-redis.sh", import.meta.url))], {
      stdio: "inherit",
    });
  });
  afterAll(() => {
    execFileSync("bash", ["-c", `redis-cli --scan --pattern '${prefix}*' | xargs -r redis-cli del`], {
      stdio: "ignore",
    });
  });

  it("prints every count as expected (durable groups named per run)", async () => {
    const { ok, lines } = await playScene(async () => redisStreamsBroker({ url, prefix }));
    expect(ok, lines.join("\n")).toBe(true);
    expect(lines[0]).toMatch(/^\[messaging\] broker redis; .* \(durable: this run's have the suffix -\w+\)$/);
    expect(lines.at(-1)).toBe(TOTALS);
  });
});
