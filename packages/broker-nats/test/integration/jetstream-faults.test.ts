/**
 * Counted proofs of JetStream's at-least-once delivery with real faults: consumer processes killed
 * with SIGKILL while they hold deliveries, on the machine's NATS server.
 */
import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Broker } from "@weft/messaging";
import { killed } from "@weft/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jetStreamBroker } from "../../src/index.ts";
import { deleteStreams, ensureNats, envelope, rawConnection, SERVERS, unique, until } from "./helpers.ts";

const CHILD = fileURLToPath(new URL("./consumer.child.ts", import.meta.url));
const tokens: string[] = [];
let broker: Broker;
let nc: NatsConnection;
const children: ChildProcess[] = [];

beforeAll(async () => {
  ensureNats();
  broker = await jetStreamBroker({ servers: SERVERS, stream: { storage: "memory" } });
  nc = await rawConnection();
});
afterAll(async () => {
  await Promise.all(children.map(killed));
  await broker.close();
  await deleteStreams(nc, tokens);
  await nc.close();
});

interface Consumer {
  readonly child: ChildProcess;
  /** Bodies handed to its handler (with their attempt), handled, and acked (confirmed by the server). */
  readonly got: { body: string; attempt: number }[];
  readonly done: string[];
  readonly acked: string[];
}

async function startConsumer(destination: string, maxInFlight: number, ackWaitMs: number): Promise<Consumer> {
  const child = fork(CHILD, [SERVERS, destination, "workers", String(maxInFlight), String(ackWaitMs)], {
    stdio: "inherit",
  });
  children.push(child);
  const consumer: Consumer = { child, got: [], done: [], acked: [] };
  const ready = new Promise<void>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`consumer exited (${code}) before it was ready`)));
    child.on(
      "message",
      (m: "ready" | { got: string; attempt: number } | { done: string } | { acked: string }) => {
        if (m === "ready") resolve();
        else if ("got" in m) consumer.got.push({ body: m.got, attempt: m.attempt });
        else if ("done" in m) consumer.done.push(m.done);
        else consumer.acked.push(m.acked);
      },
    );
  });
  await ready;
  return consumer;
}

describe("jetStreamBroker under SIGKILL", () => {
  it("redelivers and processes every message a killed consumer held: none lost", async () => {
    const t = unique();
    tokens.push(t);
    const dest = `${t}.jobs`;
    const total = 600;
    const ackWaitMs = 1_500;
    const a = await startConsumer(dest, 16, ackWaitMs);
    const b = await startConsumer(dest, 16, ackWaitMs);
    await Promise.all(Array.from({ length: total }, (_, i) => broker.publish(envelope(dest, String(i)))));
    // mid-batch: a has handled some and holds others in its handlers
    await until("a in the middle of its work", () => a.done.length >= 100 && a.got.length > a.done.length);
    await killed(a.child);
    // what a's handlers held, unfinished, when it died
    const lostWithA = a.got.map((g) => g.body).filter((body) => !a.done.includes(body));
    const c = await startConsumer(dest, 16, ackWaitMs);
    const all = [a, b, c];
    const processed = () => new Set(all.flatMap((x) => x.done));
    await until("every message processed", () => processed().size === total, 20_000);
    expect([...processed()].map(Number).sort((x, y) => x - y)).toEqual(
      Array.from({ length: total }, (_, i) => i),
    );
    // and the server holds nothing more for the group: every message acked
    await until("the last acks", () => b.acked.length + c.acked.length === b.done.length + c.done.length);
    const jsm = await jetstreamManager(nc);
    const [info] = await jsm.consumers.list(`weft_${t}`).next();
    expect([info?.num_pending, info?.num_ack_pending, info?.ack_floor.stream_seq]).toEqual([0, 0, total]);
    // what a held when it died came back to b or c as a later delivery
    expect(lostWithA.length).toBeGreaterThan(0);
    const redelivered = [...b.got, ...c.got].filter((g) => lostWithA.includes(g.body));
    expect(new Set(redelivered.map((g) => g.body))).toEqual(new Set(lostWithA));
    expect(redelivered.every((g) => g.attempt >= 2)).toBe(true);
    console.info(
      `SIGKILL proof: ${total} published, consumer killed holding ${lostWithA.length} unacked; ` +
        `all ${total} processed (a ${a.done.length}, b ${b.done.length}, c ${c.done.length}), ` +
        `${redelivered.length} redeliveries of the killed consumer's messages`,
    );
    await killed(b.child);
    await killed(c.child);
  });
});
