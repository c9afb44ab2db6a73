/**
 * The broker across a Redis restart, on a private `redis-server` (a free port, append-only file with
 * `appendfsync always`, a temporary directory) that the test kills with SIGKILL and starts again.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, Reason } from "@weft/core";
import { freePort, killAndRemove, killed } from "@weft/testing";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { redisStreamsBroker } from "../../src/index.ts";
import { ensureRedis, envelope, recorder, spec, text } from "./helpers.ts";

let port: number;
let dir: string;
let server: ChildProcess | undefined;

async function startServer(): Promise<void> {
  server = spawn(
    "redis-server",
    [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "yes",
      "--appendfsync",
      "always",
      "--dir",
      dir,
    ],
    { stdio: "ignore" },
  );
  const probe = new Redis(port, "127.0.0.1", { lazyConnect: true, retryStrategy: () => 50 });
  probe.on("error", () => undefined);
  try {
    await vi.waitFor(async () => expect(await probe.ping()).toBe("PONG"), { timeout: 10_000, interval: 50 });
  } finally {
    probe.disconnect();
  }
}

beforeAll(async () => {
  ensureRedis(); // the redis-server binary this test starts is the machine's
  port = await freePort();
  dir = mkdtempSync(join(tmpdir(), "weft-redis-"));
  await startServer();
});
afterAll(async () => {
  if (server !== undefined) await killAndRemove(server, dir);
});

describe("a Redis restart (append-only file)", () => {
  it("keeps what was published; publishing fails fast while it is down; subscriptions resume", async () => {
    const broker = await redisStreamsBroker({
      url: `redis://127.0.0.1:${port}`,
      redis: { retryStrategy: () => 100 },
    });
    try {
      const d = "restart.orders";
      const live = recorder();
      await broker.subscribe(spec(d, { group: "live" }), live.sink);
      const away = await broker.subscribe(spec(d, { group: "away" }), () => undefined);
      await away.stop();
      await away.close(); // the group exists; its consumers are away while the server restarts
      for (let i = 0; i < 20; i++) await broker.publish(envelope(d, `m${i}`));
      await vi.waitFor(() => expect(live.deliveries).toHaveLength(20));

      await killed(server!);
      const e = await broker.publish(envelope(d, "while down")).catch((x: unknown) => x);
      expect(e).toMatchObject({ code: Code.UNAVAILABLE, reason: Reason.BROKER_UNAVAILABLE });
      expect((e as Error).message).toContain('"restart.orders"');

      await startServer();
      // the running subscription reconnects and goes on
      await vi.waitFor(async () => broker.publish(envelope(d, "after")), { timeout: 10_000, interval: 100 });
      await vi.waitFor(() => expect(live.deliveries.map(text).at(-1)).toBe("after"), { timeout: 10_000 });
      // the group that was away is delivered what was stored before the restart, then the new one
      const back = recorder();
      await broker.subscribe(spec(d, { group: "away" }), back.sink);
      await vi.waitFor(() => expect(back.deliveries).toHaveLength(21), { timeout: 10_000 });
      expect(back.deliveries.map(text)).toEqual([...Array.from({ length: 20 }, (_, i) => `m${i}`), "after"]);
    } finally {
      await broker.close();
    }
  });
});
