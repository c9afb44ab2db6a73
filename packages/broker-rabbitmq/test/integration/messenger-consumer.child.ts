/*
 * A consumer process of the drain tests, through the messenger: subscribes to `destination` in
 * `group` with `maxInFlight` on `rabbitBroker`; each handler works `minMs` to `maxMs` (giving up
 * when its signal aborts), then reports the message to the parent over IPC before returning (the
 * messenger acks after). On `{ stop, graceMs }` it drains the subscription and reports the drain's
 * result, the most handlers seen running at once, and how many it reported.
 *
 * argv: exchange destination group maxInFlight minMs maxMs
 */
import { createMessenger, destination } from "@weft/messaging";
import { childBroker, report } from "../rabbit.ts";

const [exchange, name, group, maxInFlight, minMs, maxMs] = process.argv.slice(2);
const broker = await childBroker(exchange!);
const messenger = createMessenger({ broker });
let running = 0;
let maxRunning = 0;
let handledTotal = 0;

const subscription = await messenger.subscribe(
  destination(name!),
  async (message) => {
    running++;
    maxRunning = Math.max(maxRunning, running);
    try {
      const ms = Number(minMs) + Math.random() * (Number(maxMs) - Number(minMs));
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(resolve, ms);
        message.signal.addEventListener("abort", () => {
          clearTimeout(timer);
          reject(message.signal.reason);
        });
      });
      handledTotal++;
      await report({ id: message.id, attempt: message.attempt, pid: process.pid });
    } finally {
      running--;
    }
  },
  { group: group!, maxInFlight: Number(maxInFlight) },
);
process.on("message", async (message: { stop?: boolean; graceMs?: number }) => {
  if (message.stop !== true) return;
  const result = await subscription.drain({ graceMs: message.graceMs ?? 0 });
  await messenger.close();
  await broker.close();
  await report({ stopped: true, ...result, maxRunning, handledTotal });
  process.disconnect();
});
await report({ ready: true });
