/*
 * A consumer process for the fault tests: subscribes to a destination in a group and reports over IPC
 * each message it processed (before acking it, so a kill between the two means a redelivery, never a
 * lost report). Messages of one key are processed one at a time in delivery order, and a failed
 * attempt (`failRate`) is retried in place, as the messenger keeps per-key order inside a consumer.
 * Told "leave", it stops, finishes what it holds and closes.
 */
import type { Delivery } from "@weft/messaging";
import { redisStreamsBroker } from "../../src/index.ts";

interface Config {
  readonly destination: string;
  readonly group: string;
  readonly partitions?: number;
  readonly maxInFlight: number;
  readonly ackWaitMs: number;
  readonly leaseMs: number;
  readonly maxDelayMs: number;
  readonly failRate: number;
}

export interface Report {
  readonly type: "processed";
  readonly text: string;
  readonly key: string | undefined;
  readonly attempt: number;
  readonly pid: number;
}

const config = JSON.parse(process.argv[2]!) as Config;
const broker = await redisStreamsBroker({ partitionLeaseMs: config.leaseMs, claimIntervalMs: 100 });
const keys = new Map<string, Promise<void>>();
let running = 0;
const idle: (() => void)[] = [];

const send = (message: unknown) => new Promise<void>((resolve) => process.send!(message, () => resolve()));
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function handle(d: Delivery): Promise<void> {
  // the handler's work, failing now and then: retried here, so later messages of its key wait
  for (;;) {
    await pause(Math.random() * config.maxDelayMs);
    if (Math.random() >= config.failRate) break;
  }
  const text = new TextDecoder().decode(d.envelope.body);
  const report: Report = {
    type: "processed",
    text,
    key: d.envelope.key,
    attempt: d.attempt,
    pid: process.pid,
  };
  await send(report);
  await d.ack();
}

const subscription = await broker.subscribe(
  {
    destination: config.destination,
    group: config.group,
    maxInFlight: config.maxInFlight,
    ackWaitMs: config.ackWaitMs,
    partitions: config.partitions,
  },
  (d) => {
    running++;
    const key = d.envelope.key ?? d.envelope.id;
    const next = (keys.get(key) ?? Promise.resolve()).then(() => handle(d));
    keys.set(key, next);
    void next.finally(() => {
      if (keys.get(key) === next) keys.delete(key);
      if (--running === 0) for (const f of idle.splice(0)) f();
    });
  },
);

process.on("message", async (m) => {
  if (m !== "leave") return;
  await subscription.stop();
  if (running > 0) await new Promise<void>((r) => idle.push(r));
  await subscription.close();
  await broker.close();
  await send({ type: "left" });
  process.disconnect();
});
await send({ type: "ready" });
