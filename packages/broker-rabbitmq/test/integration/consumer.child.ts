/*
 * One consumer process of the fault tests: subscribes to a group through `rabbitBroker`, "handles"
 * each delivery (waits up to `workMs`, fails `failRate` of them with a nack), reports each handled
 * message to the parent over IPC and acks it only once the report is written, so a SIGKILL can
 * lose a report only for a message RabbitMQ still holds. On "stop" it stops taking deliveries,
 * lets running handlers finish, closes, and reports `{ stopped, maxOutstanding }`.
 *
 * argv: exchange destination group maxInFlight partitions(0: none) workMs failRate
 */
import type { Delivery } from "@weft/messaging";
import { childBroker, report } from "../rabbit.ts";

const [exchange, destination, group, maxInFlight, partitions, workMs, failRate] = process.argv.slice(2);
const broker = await childBroker(exchange!);
let outstanding = 0;
let maxOutstanding = 0;
let running = 0;
const idle: (() => void)[] = [];

async function handle(delivery: Delivery): Promise<void> {
  outstanding++;
  running++;
  maxOutstanding = Math.max(maxOutstanding, outstanding);
  await new Promise((resolve) => setTimeout(resolve, Math.random() * Number(workMs)));
  const e = delivery.envelope;
  if (Math.random() < Number(failRate)) {
    outstanding--;
    await delivery.nack(0);
  } else {
    await report({ id: e.id, key: e.key, seq: e.correlationId, attempt: delivery.attempt, pid: process.pid });
    outstanding--;
    await delivery.ack();
  }
  running--;
  if (running === 0) for (const wake of idle.splice(0)) wake();
}

const subscription = await broker.subscribe(
  {
    destination: destination!,
    group: group!,
    maxInFlight: Number(maxInFlight),
    ackWaitMs: 30_000,
    partitions: Number(partitions) === 0 ? undefined : Number(partitions),
  },
  (delivery) => void handle(delivery),
);
process.on("message", async (message: { stop?: boolean }) => {
  if (message.stop !== true) return;
  await subscription.stop();
  if (running > 0) await new Promise<void>((resolve) => idle.push(resolve));
  await subscription.close();
  await broker.close();
  await report({ stopped: true, maxOutstanding });
  process.disconnect();
});
await report({ ready: true });
