/*
 * Counted proofs against the real RabbitMQ with real faults, at the `Broker` interface: consumer
 * processes (consumer.child.ts) killed with SIGKILL, added and removed while messages flow.
 */
import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { stableHash } from "@weft/core";
import { type Broker, newMessageId, partitionDestination } from "@weft/messaging";
import { killed } from "@weft/testing";
import { afterEach, beforeAll, expect, it } from "vitest";
import { rabbitBroker } from "../../src/index.ts";
import { ensureRabbit, RABBIT_URL, rawClient, unique, until } from "../rabbit.ts";

interface Report {
  readonly id: string;
  readonly key: string | undefined;
  readonly seq: string | undefined;
  readonly attempt: number;
  readonly pid: number;
}

const script = fileURLToPath(new URL("./consumer.child.ts", import.meta.url));
let exchange: string;
let publisher: Broker;
const children: ChildProcess[] = [];
const reports: Report[] = [];

beforeAll(() => ensureRabbit());
afterEach(async () => {
  for (const child of children.splice(0)) await killed(child);
  await publisher.close();
  const raw = await rawClient();
  await raw.cleanup(exchange);
  await raw.close();
  reports.length = 0;
});

/** Starts a consumer process; resolves once its subscription is established. */
async function consumer(
  destination: string,
  group: string,
  maxInFlight: number,
  partitions: number,
  workMs: number,
  failRate = 0,
) {
  const args = [
    exchange,
    destination,
    group,
    String(maxInFlight),
    String(partitions),
    String(workMs),
    String(failRate),
  ];
  const child = fork(script, args, { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  children.push(child);
  let stopped: { maxOutstanding: number } | undefined;
  const ready = new Promise<void>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`consumer exited (${code}) before it was ready`)));
    child.on("message", (m: Record<string, unknown>) => {
      if (m.ready === true) resolve();
      else if (m.stopped === true) stopped = { maxOutstanding: Number(m.maxOutstanding) };
      else reports.push(m as unknown as Report);
    });
  });
  await ready;
  return {
    child,
    /** Graceful stop: no new deliveries, running handlers finish, then close. Resolves with its figures. */
    async stop() {
      child.send("stop");
      await until(() => stopped !== undefined, 20_000, "the consumer's graceful stop");
      return stopped!;
    },
  };
}

function setup(): Promise<Broker> {
  exchange = unique("weft-faults");
  return rabbitBroker({ url: RABBIT_URL, exchange }).then((b) => {
    publisher = b;
    return b;
  });
}

async function publishAll(b: Broker, envelopes: { destination: string; key?: string; seq?: string }[]) {
  const ids: string[] = [];
  // 16 at once: a quorum queue confirms after its fsync, in batches
  let next = 0;
  const worker = async () => {
    while (next < envelopes.length) {
      const e = envelopes[next++]!;
      const id = newMessageId();
      ids.push(id);
      await b.publish({
        id,
        kind: "event",
        destination: e.destination,
        key: e.key,
        correlationId: e.seq,
        publishedAt: Date.now(),
        contentType: "application/octet-stream",
        headers: {},
        body: new Uint8Array(16),
      });
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  return ids;
}

it("a consumer killed with SIGKILL mid-batch: every message is redelivered and processed, none lost", async () => {
  const b = await setup();
  const first = await consumer("work.items", "workers", 16, 0, 10);
  const total = 500;
  const ids = await publishAll(
    b,
    Array.from({ length: total }, () => ({ destination: "work.items" })),
  );
  await until(() => reports.length >= 150, 30_000, "150 processed before the kill");
  first.child.kill("SIGKILL");
  await killed(first.child);
  const beforeKill = reports.length;
  await consumer("work.items", "workers", 16, 0, 10);
  const processed = () => new Set(reports.map((r) => r.id));
  await until(() => processed().size === total, 60_000, `all ${total} processed`);
  expect([...processed()].sort()).toEqual([...ids].sort());
  const duplicates = reports.length - total;
  // only what the killed process held (at most its prefetch) comes again
  expect(duplicates).toBeLessThanOrEqual(16);
  expect(reports.slice(beforeKill).filter((r) => r.attempt > 1).length).toBeGreaterThanOrEqual(duplicates);
  expect(beforeKill).toBeLessThan(total);
});

it("per-key order: 100 keys, 4 consumers, 10% failures, a consumer added and one removed midway", async () => {
  const b = await setup();
  const partitions = 8;
  const keys = Array.from({ length: 100 }, (_, k) => `key-${k}`);
  const perKey = 10;
  const first = await Promise.all(
    [0, 1, 2, 3].map(() => consumer("ledger.entries", "ledger", 8, partitions, 4, 0.1)),
  );
  const envelopes = (from: number, to: number) =>
    Array.from({ length: to - from }, (_, i) => from + i).flatMap((seq) =>
      keys.map((key) => ({
        destination: partitionDestination("ledger.entries", stableHash(key) % partitions),
        key,
        seq: String(seq),
      })),
    );
  // one publisher keeps each key's publish order: sequential per key (16 keys at once, different keys)
  const publishInOrder = async (from: number, to: number) => {
    const byKey = new Map<string, { destination: string; key: string; seq: string }[]>();
    for (const e of envelopes(from, to)) byKey.set(e.key, [...(byKey.get(e.key) ?? []), e]);
    const queues = [...byKey.values()];
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < queues.length) await publishAll(b, queues[next++]!).then(() => undefined);
      }),
    );
  };
  await publishInOrder(0, 4);
  const added = await consumer("ledger.entries", "ledger", 8, partitions, 4, 0.1);
  await publishInOrder(4, 7);
  await until(() => reports.length >= 500, 60_000, "500 handled");
  // remove the consumer that is active on partitions (RabbitMQ activates the first one registered)
  const handledBy = (pid: number | undefined) => reports.filter((r) => r.pid === pid).length;
  const busiest = [...first, added].reduce((a, b) =>
    handledBy(b.child.pid) > handledBy(a.child.pid) ? b : a,
  );
  const handledBeforeRemoval = reports.length;
  const removed = await busiest.stop();
  await publishInOrder(7, perKey);
  await until(
    () => new Set(reports.map((r) => r.id)).size === keys.length * perKey,
    90_000,
    "all 1,000 handled",
  );
  for (const key of keys) {
    const seqs = reports.filter((r) => r.key === key).map((r) => Number(r.seq));
    expect(seqs, key).toEqual(Array.from({ length: perKey }, (_, i) => i));
  }
  expect(removed.maxOutstanding).toBeLessThanOrEqual(8);
  // the removed consumer's partitions went on elsewhere
  expect(reports.slice(handledBeforeRemoval).some((r) => r.pid !== busiest.child.pid)).toBe(true);
  expect(handledBy(busiest.child.pid)).toBeGreaterThan(0);
});

it("graceful stop under load: in-flight never above max, only unfinished messages come again", async () => {
  const b = await setup();
  const maxInFlight = 8;
  const first = await consumer("batch.jobs", "jobs", maxInFlight, 0, 40);
  const total = 300;
  const ids = await publishAll(
    b,
    Array.from({ length: total }, () => ({ destination: "batch.jobs" })),
  );
  await until(() => reports.length >= 60, 30_000, "60 handled before the stop");
  const { maxOutstanding } = await first.stop();
  const handledByFirst = reports.length;
  await consumer("batch.jobs", "jobs", maxInFlight, 0, 5);
  await until(() => new Set(reports.map((r) => r.id)).size === total, 60_000, `all ${total} handled`);
  expect(maxOutstanding).toBeLessThanOrEqual(maxInFlight);
  expect(maxOutstanding).toBe(maxInFlight);
  // every handler that started finished within the stop: nothing handled twice
  expect(reports.length).toBe(total);
  expect([...new Set(reports.map((r) => r.id))].sort()).toEqual([...ids].sort());
  expect(handledByFirst).toBeLessThan(total);
});
