/**
 * `weft dlq list|replay` in-process against a memory broker (given as a scheme, since `memory:` in a
 * child process would be an empty broker of its own): the listing, --json, replay by id and all,
 * exit codes, usage errors; then the real command as a child process against Redis, and a broker
 * that cannot be reached.
 */
import { execFile, execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { promisify } from "node:util";
import { redisStreamsBroker } from "@weft/broker-redis";
import { SILENT_LOGGER } from "@weft/core";
import { type Broker, createMessenger, destination, type Messenger, memoryBroker } from "@weft/messaging";
import { afterEach, describe, expect, it } from "vitest";
import { dlqCommand, preview } from "../src/commands/dlq.ts";
import { run } from "../src/index.ts";
import { captureIo, repoRoot } from "./io.ts";

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

/**
 * Group `workers` on `orders.placed`, dead-lettering each message at its first delivery (to
 * `dlq.workers`) while `failing.on`, recording what it handles otherwise.
 */
async function failingWorkers(m: Messenger) {
  const orders = destination<{ n: number }>("orders.placed");
  const failing = { on: true };
  const handled: string[] = [];
  await m.subscribe(
    orders,
    (msg) => {
      if (failing.on) throw new Error(`no stock for ${msg.body.n}`);
      handled.push(msg.id);
    },
    { group: "workers", maxDeliveries: 1 },
  );
  return { orders, failing, handled };
}

/** A memory broker with `count` dead letters in `dlq.workers` (from `orders.placed`, group `workers`). */
async function brokerWithDeadLetters(count: number) {
  const broker = memoryBroker();
  cleanup.push(() => broker.close());
  const m = createMessenger({ broker, logger: SILENT_LOGGER });
  cleanup.push(() => m.close({ graceMs: 0 }));
  const { orders, failing, handled } = await failingWorkers(m);
  const ids: string[] = [];
  for (let n = 0; n < count; n++) ids.push(await m.publish(orders, { n }, { key: `k${n}` }));
  await expect.poll(async () => (await broker.browse!("dlq.workers", { limit: 100 })).length).toBe(count);
  // the command closes the broker it opened: give it a view whose close leaves this one open
  const view: Broker = { ...broker, close: () => Promise.resolve() };
  for (const k of ["publish", "subscribe", "openInbox", "createGroup", "browse"] as const)
    Object.assign(view, { [k]: (broker[k] as (...a: unknown[]) => unknown).bind(broker) });
  const weft = (...args: string[]) => {
    const io = captureIo(process.cwd());
    return dlqCommand({ test: async () => view })
      .run(args, io)
      .then((code) => ({ code, stdout: io.stdout, stderr: io.stderr }));
  };
  return { weft, ids, failing, handled };
}

describe("weft dlq", () => {
  it("list prints each dead letter (id, origin, group, reason, attempts, when, error, body) and leaves them", async () => {
    const { weft, ids } = await brokerWithDeadLetters(2);
    const first = await weft("list", "test://", "dlq.workers");
    expect(first.code).toBe(0);
    const lines = first.stdout.trim().split("\n");
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(
      new RegExp(
        `^${ids[0]}  orders\\.placed  group=workers  reason=MAX_DELIVERIES  attempts=1  at=\\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z  error="no stock for 0"  body=de0001a16e00$`,
      ),
    );
    expect((await weft("list", "test://", "dlq.workers")).stdout).toBe(first.stdout);
    expect(
      (await weft("list", "test://", "dlq.workers", "--limit", "1")).stdout.trim().split("\n"),
    ).toHaveLength(1);
  });

  it("list --json gives every field", async () => {
    const { weft, ids } = await brokerWithDeadLetters(1);
    const { stdout } = await weft("list", "test://", "dlq.workers", "--json");
    expect(JSON.parse(stdout)).toEqual({
      deadLetters: [
        expect.objectContaining({
          id: ids[0],
          destination: "orders.placed",
          group: "workers",
          reason: "MAX_DELIVERIES",
          attempts: 1,
          error: "no stock for 0",
          key: "k0",
          contentType: "application/msgpack",
          headers: {},
          bodyBytes: 6,
          bodyPreview: "de0001a16e00",
          problem: null,
        }),
      ],
    });
  });

  it("replay --id republishes that one (same id) and removes it; --all the rest; exit 0", async () => {
    const { weft, ids, failing, handled } = await brokerWithDeadLetters(3);
    failing.on = false;
    const one = await weft("replay", "test://", "dlq.workers", "--id", ids[1]!);
    expect(one).toMatchObject({
      code: 0,
      stdout: `replayed   ${ids[1]}\n1 replayed, 0 failed, 0 not found\n`,
    });
    await expect.poll(() => handled).toEqual([ids[1]]);
    const left = await weft("list", "test://", "dlq.workers", "--json");
    expect(JSON.parse(left.stdout).deadLetters.map((d: { id: string }) => d.id)).toEqual([ids[0], ids[2]]);
    const rest = await weft("replay", "test://", "dlq.workers", "--all", "--json");
    expect(rest.code).toBe(0);
    expect(JSON.parse(rest.stdout)).toEqual({ replayed: [ids[0], ids[2]], failed: [], notFound: [] });
    await expect.poll(() => handled.length).toBe(3);
    expect((await weft("list", "test://", "dlq.workers")).stdout).toBe("no dead letters in dlq.workers\n");
  });

  it("replay of an id that is not there exits 1 and says so", async () => {
    const { weft } = await brokerWithDeadLetters(1);
    const r = await weft("replay", "test://", "dlq.workers", "--id", "nope", "--timeout-ms", "200");
    expect(r).toMatchObject({ code: 1, stdout: "not found  nope\n0 replayed, 0 failed, 1 not found\n" });
  });

  it("bad usage exits 2 with a message", async () => {
    const { weft } = await brokerWithDeadLetters(0);
    for (const [args, message] of [
      [["list"], /broker URL is required/],
      [["list", "test://"], /dead-letter destination is required/],
      [["peek", "test://", "d"], /unknown action peek/],
      [["replay", "test://", "dlq.workers"], /--id ID .* or --all/],
      [["replay", "test://", "dlq.workers", "--all", "--id", "x"], /--id ID .* or --all/],
      [["list", "test://", "dlq.workers", "--all"], /--all is for replay/],
      [["list", "test://", "dlq.workers", "--limit", "0"], /--limit expects a positive integer/],
      [["list", "test://", "dlq.*"], /destination/],
    ] as const) {
      await expect(weft(...args)).rejects.toThrow(message);
    }
    const io = captureIo(process.cwd());
    expect(await run(["dlq", "list", "kafka://k:9092", "dlq.x"], io)).toBe(2);
    expect(io.stderr).toMatch(/scheme is one of memory/);
  });

  it("previews text as a quoted string and other bodies as hex, cut with their size", () => {
    expect(preview("text/plain", new TextEncoder().encode("é\n"))).toBe('"é\\n"');
    expect(preview("application/octet-stream", new Uint8Array([0, 255]))).toBe("00ff");
    expect(preview("application/json", new Uint8Array(100).fill(97))).toBe(
      `"${"a".repeat(60)}"… (100 bytes)`,
    );
    expect(preview("application/msgpack", new Uint8Array(61))).toBe(`${"00".repeat(30)}… (61 bytes)`);
  });
});

describe("weft dlq against Redis, as a child process", () => {
  const WEFT = join(repoRoot, "packages/cli/bin/weft.js");
  const weft = (...args: string[]) =>
    promisify(execFile)(process.execPath, [WEFT, ...args]).then(
      (r) => ({ code: 0, ...r }),
      (e: { code: number; stdout: string; stderr: string }) => ({
        code: e.code,
        stdout: e.stdout,
        stderr: e.stderr,
      }),
    );

  it("lists the dead letters a subscription made, replays them all, and the list is empty", async () => {
    execFileSync("bash", [join(repoRoot, "scripts/ensure-redis.sh")], { stdio: "inherit" });
    const prefix = `weftcli${randomUUID().slice(0, 8)}:`;
    const url = `redis://127.0.0.1:6379?prefix=${encodeURIComponent(prefix)}`;
    const broker = await redisStreamsBroker({ url: "redis://127.0.0.1:6379", prefix });
    const m = createMessenger({ broker, logger: SILENT_LOGGER });
    cleanup.push(async () => {
      await m.close({ graceMs: 0 });
      await broker.close();
      const keys = execFileSync("redis-cli", ["--scan", "--pattern", `${prefix}*`], { encoding: "utf8" });
      const names = keys.split("\n").filter((k) => k !== "");
      if (names.length > 0) execFileSync("redis-cli", ["DEL", ...names]);
    });
    const { orders, failing, handled } = await failingWorkers(m);
    const ids = [await m.publish(orders, { n: 1 }), await m.publish(orders, { n: 2 })];
    await expect
      .poll(async () => (await broker.browse!("dlq.workers", { group: "dlq", limit: 10 })).length)
      .toBe(2);

    const listed = await weft("dlq", "list", url, "dlq.workers", "--json");
    expect(listed.code).toBe(0);
    expect(
      JSON.parse(listed.stdout).deadLetters.map((d: { id: string; reason: string }) => [d.id, d.reason]),
    ).toEqual(ids.map((id) => [id, "MAX_DELIVERIES"]));
    failing.on = false;
    const replayed = await weft("dlq", "replay", url, "dlq.workers", "--all");
    expect(replayed).toMatchObject({ code: 0 });
    expect(replayed.stdout).toContain("2 replayed, 0 failed, 0 not found");
    await expect.poll(() => [...handled].sort()).toEqual([...ids].sort());
    expect((await weft("dlq", "list", url, "dlq.workers")).stdout).toBe("no dead letters in dlq.workers\n");
  });

  it("a broker that cannot be reached exits 2 with one line", async () => {
    const r = await weft("dlq", "list", "redis://127.0.0.1:1?connectTimeoutMs=500", "dlq.x");
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^weft dlq: \[UNAVAILABLE\] redis broker: cannot connect[^\n]*\n$/);
  });
});
