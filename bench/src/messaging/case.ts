/**
 * One messaging case, in its own process: `node case.ts '<MessagingJob as JSON>'`. Prints one
 * `ClientResult` JSON line (the process's own CPU: publisher and consumer, or requester and responder,
 * both run here) and exits.
 *
 * - `flow`: publish → consume. A closed loop of `concurrency` messages: each lane publishes one
 *   message to a queue group and waits until the group's handler has run for it, then publishes the
 *   next. Latency is end to end, from the publish call to the handler.
 * - `request`: `messenger.request` over core NATS to a `messenger.subscribe` responder that replies
 *   with the body. `raw-request`: the same over the raw `@nats-io` client (`request` and a queue
 *   subscription that `respond`s), its anchor.
 */
import { randomUUID } from "node:crypto";
import { rm } from "node:fs/promises";
import { rawBytes, SILENT_LOGGER } from "@weft/core";
import { createMessenger, destination } from "@weft/messaging";
import { runUnary } from "../load.ts";
import type { BenchClient } from "../types.ts";
import { type BenchBroker, openPair, runDir } from "./brokers.ts";

export interface MessagingJob {
  readonly kind: "flow" | "request" | "raw-request";
  /** The broker of a `flow` case. */
  readonly broker: BenchBroker | undefined;
  readonly concurrency: number;
  readonly payloadBytes: number;
  readonly warmupMs: number;
  readonly durationMs: number;
}

const job = JSON.parse(process.argv[2] ?? "null") as MessagingJob | null;
if (job === null) {
  process.stderr.write("usage: case.ts '<job json>'\n");
  process.exit(2);
}

const payload = new Uint8Array(job.payloadBytes).fill(7);
// a first token per broker and kind: a JetStream stream (over `<token>.>`) must never capture the core
// NATS cases' subjects, or it would store their messages and answer their requests
// (RabbitMQ's group queues are durable: one fixed name, so runs reuse one queue instead of leaving theirs)
const name = `bench${job.kind === "flow" ? job.broker : job.kind.replace("-", "")}.${job.broker === "rabbitmq" ? "flow" : randomUUID().slice(0, 8)}`;

async function flowClient(broker: BenchBroker): Promise<BenchClient> {
  const dir = runDir();
  const { publisher, consumer } = await openPair(broker, dir);
  const pub = createMessenger({ broker: publisher, logger: SILENT_LOGGER });
  const sub = createMessenger({ broker: consumer, logger: SILENT_LOGGER });
  const d = destination<Uint8Array>(name, { codec: rawBytes });
  const waiting = new Map<string, () => void>();
  // an in-process broker delivers in microtasks: the lane goes on in the next turn of the event loop,
  // or a closed loop would never let the window's timers run
  const inProcess = publisher === consumer;
  await sub.subscribe(
    d,
    (m) => {
      const resolve = waiting.get(m.id);
      waiting.delete(m.id);
      if (resolve !== undefined) inProcess ? setImmediate(resolve) : resolve();
    },
    { group: "bench", maxInFlight: Math.max(64, job!.concurrency) },
  );
  return {
    echo: () =>
      new Promise<void>((resolve, reject) => {
        const id = randomUUID();
        waiting.set(id, resolve);
        pub.publish(d, payload, { id }).catch(reject);
      }),
    stream: () => Promise.reject(new Error("no stream case")),
    close: async () => {
      await Promise.all([pub.close({ graceMs: 0 }), sub.close({ graceMs: 0 })]);
      await Promise.all([...new Set([publisher, consumer])].map((b) => b.close()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function client(): Promise<BenchClient> {
  switch (job!.kind) {
    case "flow":
      return flowClient(job!.broker ?? "memory");
    default: {
      const { requestClient } = await import("./nats-request.ts");
      return requestClient(job!.kind === "raw-request", name, payload);
    }
  }
}

const c = await client();
const result = await runUnary(c, {
  concurrency: job.concurrency,
  warmupMs: job.warmupMs,
  durationMs: job.durationMs,
  onWindow: () => {},
});
process.stdout.write(`${JSON.stringify(result)}\n`);
const force = setTimeout(() => process.exit(0), 3000);
force.unref();
try {
  await c.close();
} finally {
  process.exit(0);
}
