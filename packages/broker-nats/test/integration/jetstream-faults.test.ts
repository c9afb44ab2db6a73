/**
 * Counted proofs with real faults: at-least-once delivery while consumer processes are killed with
 * SIGKILL holding deliveries, per-key order across a group whose handlers fail at random while
 * members join and leave, a graceful stop under load (on the machine's NATS server), and storage
 * through a SIGKILL of the server itself (a private one on a free port).
 */
import { type ChildProcess, fork } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { jetstreamManager } from "@nats-io/jetstream";
import { Code, Reason, stableHash, type Telemetry } from "@weft/core";
import type { Broker, BrokerSubscription, Delivery } from "@weft/messaging";
import { freePort, killAndRemove, killed } from "@weft/testing";
import { afterAll, describe, expect, it } from "vitest";
import { jetStreamBroker } from "../../src/index.ts";
import { bodyOf, envelope, jetStreamSetup, SERVERS, startNatsServer, until } from "./helpers.ts";

const CHILD = fileURLToPath(new URL("./consumer.child.ts", import.meta.url));
const env = jetStreamSetup();
const children: ChildProcess[] = [];
afterAll(() => Promise.all(children.map(killed)));

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
    const t = env.token();
    const dest = `${t}.jobs`;
    const total = 600;
    const ackWaitMs = 1_500;
    const a = await startConsumer(dest, 16, ackWaitMs);
    const b = await startConsumer(dest, 16, ackWaitMs);
    await Promise.all(Array.from({ length: total }, (_, i) => env.broker.publish(envelope(dest, String(i)))));
    // mid-batch: a has handled some and holds others in its handlers
    await until(
      "a in the middle of its work",
      () => a.done.length >= 100 && a.got.length - a.done.length >= 8,
    );
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
    const jsm = await jetstreamManager(env.nc);
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

describe("jetStreamBroker partitions", () => {
  it("keep per-key order with 100 keys, 4 members, 10% failures, a member added and one removed midway", async () => {
    const t = env.token();
    const dest = `${t}.orders`;
    const partitions = 8;
    const keys = 100;
    const perKey = 12;
    const total = keys * perKey;
    const handled = new Map<string, number[]>(); // key -> sequence numbers, in the order handled successfully
    const running = new Map<string, number>(); // key -> handlers running now
    let overlaps = 0;
    let failures = 0;
    let deliveries = 0;
    const sink = (d: Delivery) => {
      deliveries++;
      const key = d.envelope.key!;
      if ((running.get(key) ?? 0) > 0) overlaps++;
      running.set(key, (running.get(key) ?? 0) + 1);
      setTimeout(() => {
        running.set(key, running.get(key)! - 1);
        if (Math.random() < 0.1) {
          failures++;
          void d.nack(5);
          return;
        }
        const list = handled.get(key) ?? [];
        handled.set(key, list);
        list.push(Number(bodyOf(d)));
        void d.ack();
      }, Math.random() * 3);
    };
    // each member on its own connection, as separate processes would be
    const brokers: Broker[] = [];
    const join = async (): Promise<BrokerSubscription> => {
      const b = await jetStreamBroker({ servers: SERVERS, stream: { storage: "memory" } });
      brokers.push(b);
      return b.subscribe(
        { destination: dest, group: "g", maxInFlight: 8, ackWaitMs: 5_000, partitions },
        sink,
      );
    };
    const members = await Promise.all([join(), join(), join(), join()]);
    const publishAll = async (from: number, to: number) => {
      for (let i = from; i < to; i++)
        await Promise.all(
          Array.from({ length: keys }, (_, k) =>
            env.broker.publish(
              envelope(`${dest}.p${stableHash(`key${k}`) % partitions}`, String(i), { key: `key${k}` }),
            ),
          ),
        );
    };
    const count = () => [...handled.values()].reduce((n, l) => n + l.length, 0);
    await publishAll(0, perKey / 2);
    await until("a third handled", () => count() >= total / 3, 20_000);
    members.push(await join());
    await members[0]!.close(); // leaves with deliveries in hand: they go back to the group
    await publishAll(perKey / 2, perKey);
    await until("every message handled", () => count() === total, 30_000);
    expect(overlaps).toBe(0);
    for (let k = 0; k < keys; k++)
      expect(handled.get(`key${k}`), `key${k}`).toEqual(Array.from({ length: perKey }, (_, i) => i));
    expect(failures).toBeGreaterThan(0);
    console.info(
      `order proof: ${total} messages, ${keys} keys over ${partitions} partitions, ${deliveries} deliveries, ` +
        `${failures} failed and redelivered, 0 out of order, 0 overlapping`,
    );
    for (const m of members) await m.close();
    await Promise.all(brokers.map((b) => b.close()));
  }, 60_000);
});

describe("jetStreamBroker graceful shutdown", () => {
  it("under load: in-flight never above max, and only the unfinished messages are redelivered", async () => {
    const dest = `${env.token()}.load`;
    const total = 400;
    const max = 8;
    const finishedByA = new Set<string>();
    const abandonedByA = new Set<string>();
    const heldByA = new Map<string, { d: Delivery; timer: NodeJS.Timeout; slow: boolean }>();
    let mostA = 0;
    let busy!: () => void;
    const isBusy = new Promise<void>((resolve) => {
      busy = resolve;
    });
    const a = await env.broker.subscribe(
      { destination: dest, group: "g", maxInFlight: max, ackWaitMs: 30_000, partitions: undefined },
      (d) => {
        const body = bodyOf(d);
        // most handlers are quick; one in 40 would outlast the grace period of the drain
        const slow = Number(body) % 40 === 7;
        const timer = setTimeout(
          () => {
            heldByA.delete(body);
            finishedByA.add(body);
            if (finishedByA.size === 50) busy(); // mid-load: message 47 (slow) is still held
            void d.ack();
          },
          slow ? 20_000 : 2 + Math.random() * 10,
        );
        heldByA.set(body, { d, timer, slow });
        mostA = Math.max(mostA, heldByA.size);
      },
    );
    await Promise.all(Array.from({ length: total }, (_, i) => env.broker.publish(envelope(dest, String(i)))));
    await isBusy;
    // the drain: stop pulling, let the running handlers finish, then abandon (nack) the slow ones
    await a.stop();
    await until("the quick handlers done", () => [...heldByA.values()].every((h) => h.slow));
    for (const [body, { d, timer }] of heldByA) {
      clearTimeout(timer);
      abandonedByA.add(body);
      await d.nack(0);
    }
    heldByA.clear();
    await a.close();
    const gotByB: string[] = [];
    const b = await env.broker.subscribe(
      { destination: dest, group: "g", maxInFlight: max, ackWaitMs: 30_000, partitions: undefined },
      (d) => {
        gotByB.push(bodyOf(d));
        void d.ack();
      },
    );
    await until("the rest", () => finishedByA.size + gotByB.length >= total);
    expect(mostA).toBeLessThanOrEqual(max);
    expect(abandonedByA.size).toBeGreaterThan(0);
    expect(gotByB.filter((x) => finishedByA.has(x))).toEqual([]); // nothing finished comes back
    expect(new Set([...finishedByA, ...gotByB]).size).toBe(total);
    expect(gotByB.length).toBe(total - finishedByA.size);
    console.info(
      `drain proof: ${total} messages, max in flight ${max} (most seen ${mostA}); ${finishedByA.size} finished ` +
        `before the drain, ${abandonedByA.size} abandoned and redelivered, ${gotByB.length} handled by the next member, ` +
        `0 finished ones redelivered`,
    );
    await b.close();
  });
});

describe("jetStreamBroker across a server crash", () => {
  it("keeps what it confirmed through a SIGKILL of the server, reconnects, and fails publishes while it is down", {
    timeout: 60_000,
  }, async () => {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), "weft-nats-"));
    let server = await startNatsServer(port, dir);
    const events: string[] = [];
    const telemetry: Telemetry = {
      event(name, attributes) {
        if (name === "broker.connection") events.push((attributes as { status: string }).status);
      },
    };
    const b = await jetStreamBroker({ servers: `127.0.0.1:${port}`, requestTimeoutMs: 500, telemetry });
    try {
      const dest = "orders.placed";
      const spec = {
        destination: dest,
        group: "g",
        maxInFlight: 16,
        ackWaitMs: 30_000,
        partitions: undefined,
      };
      await (await b.subscribe(spec, () => {})).close(); // the group exists from here on
      // another group's member stays subscribed through the crash
      const live: string[] = [];
      const liveSub = await b.subscribe({ ...spec, group: "live" }, (d) => {
        live.push(bodyOf(d));
        d.ack().catch(() => {}); // an ack the outage swallowed: the message comes again
      });
      const total = 50;
      for (let i = 0; i < total; i++) await b.publish(envelope(dest, String(i)));
      await killed(server); // SIGKILL; the store stays
      await until("the disconnect", () => events.includes("disconnected"));
      const error = await b.publish(envelope(dest, "while down")).catch((e) => e);
      expect([error.code, error.reason]).toEqual([Code.UNAVAILABLE, Reason.BROKER_UNAVAILABLE]);
      expect(error.message).toContain(`jetstream: could not publish to ${dest}`);
      server = await startNatsServer(port, dir);
      await until("the reconnect", () => events.includes("reconnected"));
      const got: string[] = [];
      const sub = await b.subscribe(spec, (d) => {
        got.push(bodyOf(d));
        void d.ack();
      });
      await until("every message stored before the crash", () => got.length >= total);
      expect(got.filter((x) => x !== "while down")).toEqual(
        Array.from({ length: total }, (_, i) => String(i)),
      );
      await sub.close();
      // the member that stayed subscribed pulls again by itself once the server is back
      for (let i = 0; i < 10; i++) await b.publish(envelope(dest, `after ${i}`));
      await until(
        "the live member's messages from after the restart",
        () => live.includes("after 9"),
        40_000,
      );
      expect(live.filter((x) => x.startsWith("after"))).toEqual(
        Array.from({ length: 10 }, (_, i) => `after ${i}`),
      );
      await liveSub.close();
    } finally {
      await b.close();
      await killAndRemove(server, dir);
    }
  });
});
