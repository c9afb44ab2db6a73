/*
 * A messenger process on the Redis broker, for the fault tests. As a `consumer` it subscribes in a
 * group and reports over IPC each message its handler finished (before the messenger acks it, so a
 * kill between the two means a redelivery, never a lost report); its handler fails now and then
 * (`failRate`), which the messenger retries. As a `responder` it replies to each request after a
 * random delay. Told "leave", it drains and exits.
 */
import { createMessenger, destination } from "@weft/messaging";
import { redisStreamsBroker } from "../../src/index.ts";

interface Config {
  readonly role: "consumer" | "responder";
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
  readonly n: number;
  readonly key: string | undefined;
  readonly attempt: number;
  readonly pid: number;
}

const config = JSON.parse(process.argv[2]!) as Config;
const broker = await redisStreamsBroker({ partitionLeaseMs: config.leaseMs, claimIntervalMs: 100 });
const messenger = createMessenger({ broker });
const send = (message: unknown) => new Promise<void>((resolve) => process.send!(message, () => resolve()));
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
const to = destination<{ n: number }>(
  config.destination,
  config.partitions === undefined ? {} : { partitions: config.partitions },
);
const options = {
  group: config.group,
  maxInFlight: config.maxInFlight,
  ackWaitMs: config.ackWaitMs,
  maxDeliveries: 1000,
  backoff: { initialDelayMs: 5, maxDelayMs: 20 },
};

const subscription =
  config.role === "consumer"
    ? await messenger.subscribe(
        to,
        async (m) => {
          await pause(Math.random() * config.maxDelayMs);
          if (Math.random() < config.failRate) throw new Error("a transient failure");
          const report: Report = {
            type: "processed",
            n: m.body.n,
            key: m.key,
            attempt: m.attempt,
            pid: process.pid,
          };
          await send(report);
        },
        options,
      )
    : await messenger.subscribe(
        to,
        async (m) => {
          await pause(Math.random() * config.maxDelayMs);
          await m.reply({ n: m.body.n, pid: process.pid, attempt: m.attempt });
        },
        options,
      );

process.on("message", async (m) => {
  if (m !== "leave") return;
  const drained = await subscription.drain({ graceMs: 10_000 });
  await messenger.close();
  await broker.close();
  await send({ type: "left", ...drained });
  process.disconnect();
});
await send({ type: "ready" });
