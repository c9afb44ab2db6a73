/**
 * The Redis limiters against the real Redis of this machine (127.0.0.1:6379), and against a private
 * `redis-server` on a free port that the fallback test stops and starts again.
 */
import { type ChildProcess, execFileSync, fork, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createServer as createNetServer } from "node:net";
import { fileURLToPath } from "node:url";
import type { Logger, Telemetry } from "@weft/core";
import type { Acquisition, Limiter } from "@weft/resilience";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { redisSlidingWindow, redisTokenBucket } from "../../src/index.ts";

const prefix = () => `weft:test:${randomBytes(6).toString("hex")}:`;
let redis: Redis;
beforeAll(async () => {
  // the machine's Redis: started when it is down, never skipped
  execFileSync("bash", [fileURLToPath(new URL("../../../../scripts/ensure-redis.sh", import.meta.url))], {
    stdio: "inherit",
  });
  redis = new Redis({ host: "127.0.0.1", port: 6379, enableOfflineQueue: false, lazyConnect: true });
  await redis.connect();
});
afterAll(() => redis.disconnect());

const take = async (l: Limiter, n: number, key = "k"): Promise<number> => {
  let ok = 0;
  for (let i = 0; i < n; i++) if ((await l.tryAcquire(key)).ok) ok++;
  return ok;
};

describe("redisTokenBucket", () => {
  it("is exact at the boundaries (injected clock)", async () => {
    let t = 1_000_000;
    const l = redisTokenBucket({ redis, prefix: prefix(), ratePerSecond: 10, capacity: 5, now: () => t });
    expect(await take(l, 8)).toBe(5);
    expect(await l.tryAcquire("k")).toEqual({ ok: false, retryAfterMs: 100 });
    t += 99;
    expect(await take(l, 1)).toBe(0);
    t += 1;
    expect(await take(l, 3)).toBe(1);
    expect(await take(l, 5, "other")).toBe(5);
    t += 60_000;
    expect(await take(l, 10)).toBe(5);
    await expect(async () => l.tryAcquire("k", 6)).rejects.toThrow(RangeError);
  });
});

describe("redisSlidingWindow", () => {
  it("is exact at the boundaries (injected clock)", async () => {
    let t = 0;
    const l = redisSlidingWindow({ redis, prefix: prefix(), limit: 3, windowMs: 1000, now: () => t });
    expect(await take(l, 1)).toBe(1);
    t = 500;
    expect(await take(l, 5)).toBe(2);
    expect(await l.tryAcquire("k")).toEqual({ ok: false, retryAfterMs: 500 });
    t = 999;
    expect(await take(l, 1)).toBe(0);
    t = 1000;
    expect(await take(l, 5)).toBe(1);
    expect(await l.tryAcquire("k", 2)).toEqual({ ok: false, retryAfterMs: 500 });
    t = 1500;
    expect(await take(l, 5)).toBe(2);
  });
});

describe("a global limit across 3 processes", () => {
  const children: ChildProcess[] = [];
  afterEach(() => {
    for (const c of children.splice(0)) c.kill();
  });

  it("holds within 5% (token bucket, 200/s, burst 50, for 2 s)", async () => {
    const p = prefix();
    const durationMs = 2000;
    const script = fileURLToPath(new URL("./hammer.child.ts", import.meta.url));
    for (let i = 0; i < 3; i++) children.push(fork(script, [p, String(durationMs)], { stdio: "inherit" }));
    await Promise.all(children.map((c) => new Promise((r) => c.once("message", r))));
    const t0 = Date.now();
    const results = children.map(
      (c) => new Promise<number>((r) => c.once("message", (m) => r((m as { granted: number }).granted))),
    );
    for (const c of children) c.send("go");
    const granted = await Promise.all(results);
    const elapsed = Date.now() - t0;
    const total = granted.reduce((a, b) => a + b, 0);
    // the burst plus the refill over the time the three were running
    const expected = 50 + (200 * durationMs) / 1000;
    console.log(
      `3 processes: granted ${granted.join(" + ")} = ${total}, expected ${expected} (${elapsed} ms)`,
    );
    expect(granted.every((g) => g > 0)).toBe(true);
    expect(Math.abs(total - expected) / expected).toBeLessThanOrEqual(0.05);
  });
});

async function freePort(): Promise<number> {
  const srv = createNetServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const { port } = srv.address() as { port: number };
  await new Promise((r) => srv.close(r));
  return port;
}

async function until(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 10_000,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("falling back while Redis is unreachable", () => {
  let server: ChildProcess | undefined;
  afterEach(() => server?.kill());

  function startRedis(port: number): ChildProcess {
    return spawn(
      "redis-server",
      ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
      {
        stdio: "ignore",
      },
    );
  }

  it("limits locally, says so once, and returns to Redis when it is back", async () => {
    const port = await freePort();
    server = startRedis(port);
    const client = new Redis({
      host: "127.0.0.1",
      port,
      enableOfflineQueue: false,
      commandTimeout: 200,
      retryStrategy: () => 50,
      lazyConnect: true,
    });
    client.on("error", () => {}); // reconnect attempts while the server is down
    await until(
      () =>
        client.connect().then(
          () => true,
          () => false,
        ),
      "the private redis-server",
    );
    const lines: string[] = [];
    const log = (level: string) => (a: unknown, b?: string) => lines.push(`${level} ${b ?? a}`);
    const logger = {
      debug: log("debug"),
      info: log("info"),
      warn: log("warn"),
      error: log("error"),
      child: () => logger,
    } as Logger;
    const events: unknown[] = [];
    const telemetry: Telemetry = {
      event: (name, a) => events.push([name, (a as { active: boolean }).active]),
    };
    const l = redisTokenBucket({
      redis: client,
      prefix: prefix(),
      ratePerSecond: 1,
      capacity: 3,
      probeIntervalMs: 100,
      logger,
      telemetry,
    });
    expect(await take(l, 1)).toBe(1); // on Redis: 2 left there
    expect(await client.dbsize()).toBe(1);

    const exited = new Promise((r) => server?.once("exit", r));
    server.kill();
    await exited; // its port is free again before the restart below
    await until(() => client.status !== "ready", "the client to see Redis gone");
    // the local fallback starts full: 3 granted, then refused
    const outage: Acquisition[] = [];
    for (let i = 0; i < 10; i++) outage.push(await l.tryAcquire("k"));
    expect(outage.filter((a) => a.ok).length).toBe(3);
    expect(lines.filter((s) => s.startsWith("warn"))).toHaveLength(1);

    server = startRedis(port);
    await until(() => client.status === "ready", "the client to reconnect");
    await new Promise((r) => setTimeout(r, 120)); // past the probe interval
    expect((await l.tryAcquire("k2")).ok).toBe(true); // answered by Redis again: a fresh server
    expect(await client.dbsize()).toBe(1);
    expect(lines).toEqual([
      "warn rate limiter: Redis unreachable, limiting locally until it is back",
      "info rate limiter: Redis is back, limiting through it again",
    ]);
    expect(events).toEqual([
      ["ratelimit.fallback", true],
      ["ratelimit.fallback", false],
    ]);
    client.disconnect();
  });
});
