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

const consumerScript = fileURLToPath(new URL("./consumer.child.ts", import.meta.url));
const messengerScript = fileURLToPath(new URL("./messenger-consumer.child.ts", import.meta.url));
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

/**
 * Starts a fixture process (`script` with `args`); resolves once it reports `ready`. Its other
 * reports are collected in `reports`; `stop(graceMs)` asks it to stop gracefully and resolves with
 * its final figures.
 */
async function start(script: string, args: string[]) {
  const child = fork(script, [exchange, ...args], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  children.push(child);
  let stopped: Record<string, unknown> | undefined;
  await new Promise<void>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`${script} exited (${code}) before it was ready`)));
    child.on("message", (m: Record<string, unknown>) => {
      if (m.ready === true) resolve();
      else if (m.stopped === true) stopped = m;
      else reports.push(m as unknown as Report);
    });
  });
  return {
    child,
    async stop(graceMs = 0) {
      child.send({ stop: true, graceMs });
      await until(() => stopped !== undefined, 20_000, "the graceful stop");
      return stopped!;
    },
  };
}

/** A consumer process at the `Broker` interface (consumer.child.ts). */
function consumer(
  destination: string,
  group: string,
  maxInFlight: number,
  partitions: number,
  workMs: number,
  failRate = 0,
) {
  const args = [
    destination,
    group,
    String(maxInFlight),
    String(partitions),
    String(workMs),
    String(failRate),
  ];
  return start(consumerScript, args);
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
        contentType: "application/json",
        headers: {},
        body: new TextEncoder().encode("{}"),
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
  expect(removed.maxOutstanding as number).toBeLessThanOrEqual(8);
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
  const maxOutstanding = (await first.stop()).maxOutstanding as number;
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

it("a messenger's drain under load: handlers finish within the grace, only the unfinished come again", async () => {
  const b = await setup();
  const maxInFlight = 8;
  const total = 300;
  // handlers of 20 to 60 ms; the first drain gives them 5 s
  const first = await start(messengerScript, ["drain.patient", "jobs", String(maxInFlight), "20", "60"]);
  const ids = await publishAll(
    b,
    Array.from({ length: total }, () => ({ destination: "drain.patient" })),
  );
  await until(() => reports.length >= 60, 30_000, "60 handled before the drain");
  const drained = await first.stop(5_000);
  const handledByFirst = reports.length;
  expect(drained.abandoned).toBe(0);
  expect(handledByFirst).toBe(drained.handledTotal);
  await start(messengerScript, ["drain.patient", "jobs", String(maxInFlight), "0", "5"]);
  await until(() => new Set(reports.map((r) => r.id)).size === total, 60_000, `all ${total} handled`);
  expect(drained.maxRunning).toBe(maxInFlight);
  // nothing the first consumer finished comes again
  expect(reports.length).toBe(total);
  expect([...new Set(reports.map((r) => r.id))].sort()).toEqual([...ids].sort());
});

it("a messenger's drain past its grace: the handlers still running are aborted, and only unfinished messages come again", async () => {
  const b = await setup();
  const maxInFlight = 8;
  const total = 100;
  // handlers of 100 to 400 ms, drained with a grace of 50 ms
  const first = await start(messengerScript, ["drain.hasty", "jobs", String(maxInFlight), "100", "400"]);
  await publishAll(
    b,
    Array.from({ length: total }, () => ({ destination: "drain.hasty" })),
  );
  await until(() => reports.length >= 10, 30_000, "10 handled before the drain");
  const drained = await first.stop(50);
  const abandoned = drained.abandoned as number;
  expect(abandoned).toBeGreaterThan(0);
  expect(abandoned).toBeLessThanOrEqual(maxInFlight);
  expect(reports.length).toBe(drained.handledTotal);
  await start(messengerScript, ["drain.hasty", "jobs", String(maxInFlight), "0", "5"]);
  await until(() => new Set(reports.map((r) => r.id)).size === total, 60_000, `all ${total} handled`);
  // each message handled to the end once: what comes again is unfinished, the aborted handlers'
  // messages and any the broker had sent that no handler had started (within the prefetch)
  expect(reports.length).toBe(total);
  const again = reports.filter((r) => r.attempt > 1).length;
  expect(again).toBeGreaterThanOrEqual(abandoned);
  expect(again).toBeLessThanOrEqual(abandoned + maxInFlight);
  expect(drained.maxRunning as number).toBeLessThanOrEqual(maxInFlight);
});
