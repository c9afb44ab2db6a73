/**
 * `jetStreamBroker` against the machine's NATS server with JetStream (127.0.0.1:4222), at the Broker
 * level: storage and confirmation, durable groups, redelivery (ack wait, nak with delay, close),
 * the in-flight bound, dedup by message id, and a raw JetStream client on the other end (per-partition
 * order is proven in `jetstream-faults.test.ts`). Every test uses its own first token, so its own streams.
 */

import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { headers as natsHeaders } from "@nats-io/transport-node";
import { Code, ConfigError, Reason } from "@weft/core";
import type { Delivery, Envelope } from "@weft/messaging";
import { freePort, killed } from "@weft/testing";
import { describe, expect, it } from "vitest";
import { jetStreamBroker } from "../../src/index.ts";
import { ackInTurn, bodyOf, envelope, jetStreamSetup, SERVERS, startNatsServer, until } from "./helpers.ts";

const spec = { maxInFlight: 16, ackWaitMs: 30_000, partitions: undefined } as const;
const env = jetStreamSetup();
const token = () => env.token();

const stored = async (stream: string) =>
  (await (await jetstreamManager(env.nc)).streams.info(stream)).state.messages;

describe("jetStreamBroker", () => {
  it("stores what is published while a group is away, and delivers it when a member is back", async () => {
    const t = token();
    const dest = `${t}.placed`;
    const got: Delivery[] = [];
    const sink = (d: Delivery) => {
      got.push(d);
      void d.ack();
    };
    const first = await env.broker.subscribe({ ...spec, destination: dest, group: "billing" }, sink);
    await env.broker.publish(envelope(dest, "0"));
    await until("the first", () => got.length === 1);
    await first.close();
    for (let i = 1; i <= 3; i++) await env.broker.publish(envelope(dest, String(i)));
    expect(await stored(`weft_${t}`)).toBe(4);
    const again = await env.broker.subscribe({ ...spec, destination: dest, group: "billing" }, sink);
    await until("the three published while away", () => got.length === 4);
    expect(got.map(bodyOf)).toEqual(["0", "1", "2", "3"]);
    expect(got.map((d) => d.attempt)).toEqual([1, 1, 1, 1]);
    await again.close();
  });

  it("makes a group's consumer as documented: explicit acks, ack_wait, unlimited deliveries, inactivity", async () => {
    const t = token();
    const b = await jetStreamBroker({
      servers: SERVERS,
      stream: { storage: "memory" },
      groupInactiveMs: 60_000,
    });
    const sub = await b.subscribe({ ...spec, destination: `${t}.x`, group: "g", ackWaitMs: 1_234 }, () => {});
    const [info] = await (await jetstreamManager(env.nc)).consumers.list(`weft_${t}`).next();
    expect(info?.config).toMatchObject({
      ack_policy: "explicit",
      ack_wait: 1_234_000_000,
      max_deliver: -1,
      max_ack_pending: 1_000,
      filter_subject: `${t}.x`,
      deliver_policy: "new",
      inactive_threshold: 60_000_000_000,
    });
    expect(info?.config.durable_name).toMatch(/^g__t[0-9a-f]+_x__/);
    await sub.close();
    await b.close();
  });

  it("makes a stream again when it was deleted since it was found", async () => {
    const t = token();
    await env.broker.publish(envelope(`${t}.a`, "1"));
    await (await jetstreamManager(env.nc)).streams.delete(`weft_${t}`);
    await env.broker.publish(envelope(`${t}.a`, "2"));
    expect(await stored(`weft_${t}`)).toBe(1);
  });

  it("stores a message published twice with the same id once (Nats-Msg-Id)", async () => {
    const t = token();
    const e = envelope(`${t}.once`, "x");
    await env.broker.publish(e);
    await env.broker.publish(e);
    await env.broker.publish({ ...e, body: new TextEncoder().encode("y") });
    await env.broker.publish(envelope(`${t}.once`, "other"));
    expect(await stored(`weft_${t}`)).toBe(2);
  });

  it("shares a group's messages among its members, each once, and copies them to every group", async () => {
    const dest = `${token()}.work`;
    const seen = { a1: [] as string[], a2: [] as string[], b: [] as string[] };
    const sink = (into: string[]) => (d: Delivery) => {
      into.push(bodyOf(d));
      void d.ack();
    };
    const subs = [
      await env.broker.subscribe({ ...spec, destination: dest, group: "a", maxInFlight: 4 }, sink(seen.a1)),
      await env.broker.subscribe({ ...spec, destination: dest, group: "a", maxInFlight: 4 }, sink(seen.a2)),
      await env.broker.subscribe({ ...spec, destination: dest, group: "b" }, sink(seen.b)),
    ];
    await Promise.all(Array.from({ length: 200 }, (_, i) => env.broker.publish(envelope(dest, String(i)))));
    await until("200 to each group", () => seen.a1.length + seen.a2.length === 200 && seen.b.length === 200);
    const sorted = (xs: string[]) => xs.map(Number).sort((x, y) => x - y);
    expect(sorted([...seen.a1, ...seen.a2])).toEqual(Array.from({ length: 200 }, (_, i) => i));
    expect(sorted(seen.b)).toEqual(Array.from({ length: 200 }, (_, i) => i));
    expect(seen.a1.length).toBeGreaterThan(0);
    expect(seen.a2.length).toBeGreaterThan(0);
    for (const s of subs) await s.close();
  });

  it("never has more than maxInFlight deliveries outstanding", async () => {
    const dest = `${token()}.slow`;
    const held: Delivery[] = [];
    let most = 0;
    const sub = await env.broker.subscribe(
      { ...spec, destination: dest, group: "g", maxInFlight: 4 },
      (d) => {
        held.push(d);
        most = Math.max(most, held.length);
      },
    );
    for (let i = 0; i < 40; i++) await env.broker.publish(envelope(dest, String(i)));
    await until("4 outstanding", () => held.length === 4);
    const done = await ackInTurn(held, 40);
    expect(most).toBe(4);
    expect(done.map(Number).sort((x, y) => x - y)).toEqual(Array.from({ length: 40 }, (_, i) => i));
    await sub.close();
  });

  it("redelivers a nacked message after its delay, counting the delivery", async () => {
    const dest = `${token()}.retry`;
    const got: { at: number; attempt: number; d: Delivery }[] = [];
    const sub = await env.broker.subscribe({ ...spec, destination: dest, group: "g" }, (d) =>
      got.push({ at: performance.now(), attempt: d.attempt, d }),
    );
    await env.broker.publish(envelope(dest, "again"));
    await until("the first delivery", () => got.length === 1);
    const nackedAt = performance.now();
    await got[0]!.d.nack(300);
    await until("the redelivery", () => got.length === 2);
    expect(got[1]!.at - nackedAt).toBeGreaterThanOrEqual(290);
    expect(got[1]!.attempt).toBe(2);
    await got[1]!.d.nack(0);
    await until("the third delivery", () => got.length === 3);
    expect(got[2]!.attempt).toBe(3);
    got[2]!.d.progress?.();
    await got[2]!.d.ack();
    await got[2]!.d.ack();
    await sub.close();
  });

  it("hands a delivery nobody settles to another member after ackWaitMs", async () => {
    const dest = `${token()}.stuck`;
    const got: [string, number][] = [];
    const a = await env.broker.subscribe(
      { ...spec, destination: dest, group: "g", ackWaitMs: 1_000 },
      (d) => {
        got.push(["a", d.attempt]);
      },
    );
    await env.broker.publish(envelope(dest, "x"));
    await until("a's delivery", () => got.length === 1);
    await a.stop(); // a keeps the delivery and never settles it, as a hung handler would
    const b = await env.broker.subscribe(
      { ...spec, destination: dest, group: "g", ackWaitMs: 1_000 },
      (d) => {
        got.push(["b", d.attempt]);
        void d.ack();
      },
    );
    await until("b's redelivery", () => got.length === 2);
    expect(got).toEqual([
      ["a", 1],
      ["b", 2],
    ]);
    await a.close();
    await b.close();
  });

  it("gives back what a closing subscription still holds, at once", async () => {
    const dest = `${token()}.close`;
    const held: Delivery[] = [];
    const a = await env.broker.subscribe({ ...spec, destination: dest, group: "g", maxInFlight: 3 }, (d) =>
      held.push(d),
    );
    for (let i = 0; i < 5; i++) await env.broker.publish(envelope(dest, String(i)));
    await until("3 held", () => held.length === 3);
    await held[0]!.ack();
    await until("3 held again", () => held.length === 4);
    const start = performance.now();
    await a.close();
    await a.close();
    const got: Delivery[] = [];
    const b = await env.broker.subscribe({ ...spec, destination: dest, group: "g" }, (d) => {
      got.push(d);
      void d.ack();
    });
    await until("the 4 unacked", () => got.length === 4);
    expect(performance.now() - start).toBeLessThan(10_000); // well within ack_wait (30 s)
    expect(got.map(bodyOf).sort()).toEqual(["1", "2", "3", "4"]);
    await b.close();
  });

  it("gives a private subscription what is published while it is subscribed, from its own consumer", async () => {
    const t = token();
    const dest = `${t}.feed`;
    await env.broker.publish(envelope(dest, "before"));
    const one: string[] = [];
    const two: string[] = [];
    const s1 = await env.broker.subscribe({ ...spec, destination: dest, group: undefined }, (d) => {
      one.push(bodyOf(d));
      void d.ack();
    });
    const s2 = await env.broker.subscribe({ ...spec, destination: `${t}.*`, group: undefined }, (d) => {
      two.push(d.envelope.destination);
      void d.ack();
    });
    const jsm = await jetstreamManager(env.nc);
    expect((await jsm.consumers.list(`weft_${t}`).next()).length).toBe(2);
    await env.broker.publish(envelope(dest, "after"));
    await env.broker.publish(envelope(`${t}.other`, "x"));
    await until("both", () => one.length === 1 && two.length === 2);
    expect(one).toEqual(["after"]);
    expect(two.sort()).toEqual([dest, `${t}.other`]);
    await s1.close();
    await s2.close();
    expect((await jsm.consumers.list(`weft_${t}`).next()).length).toBe(0);
  });

  it("interoperates with a raw JetStream client: readable weft headers one way, plain messages the other", async () => {
    const t = token();
    const dest = `${t}.raw`;
    const sent = envelope(dest, "from weft", { kind: "command", headers: { "x-app": "1" } });
    await env.broker.publish(sent);
    const js = jetstream(env.nc);
    const jsm = await jetstreamManager(env.nc);
    const raw = await jsm.streams.getMessage(`weft_${t}`, { last_by_subj: dest });
    expect(raw?.string()).toBe("from weft");
    expect(Object.fromEntries([...raw!.header].map(([k, v]) => [k, v.join(",")]))).toMatchObject({
      "weft-id": sent.id,
      "weft-kind": "command",
      "weft-published-at": String(sent.publishedAt),
      "content-type": "text/plain",
      "x-app": "1",
      "Nats-Msg-Id": sent.id,
    });

    const got: Delivery[] = [];
    const sub = await env.broker.subscribe({ ...spec, destination: dest, group: "g" }, (d) => {
      got.push(d);
      void d.ack();
    });
    const h = natsHeaders();
    h.set("x-from", "raw");
    const ack = await js.publish(dest, "plain", { headers: h });
    await until("the raw message", () => got.length === 1);
    const e: Envelope = got[0]!.envelope;
    expect([e.id, e.kind, e.contentType, bodyOf(e), e.headers]).toEqual([
      `weft_${t}-${ack.seq}`,
      "event",
      "application/octet-stream",
      "plain",
      { "x-from": "raw" },
    ]);
    expect(got[0]!.malformed).toBeUndefined();

    // reserved headers that do not parse: delivered marked malformed (the messenger dead-letters it)
    const bad = natsHeaders();
    bad.set("weft-id", "m-1");
    bad.set("weft-kind", "nonsense");
    await js.publish(dest, "bad", { headers: bad });
    await until("the malformed message", () => got.length === 2);
    expect([got[1]!.envelope.id, got[1]!.malformed?.reason]).toEqual(["m-1", Reason.MALFORMED_MESSAGE]);
    await sub.close();
  });

  it("sends transient messages and replies over core NATS, never storing them", async () => {
    const t = token();
    const replies: Envelope[] = [];
    const inbox = await env.broker.openInbox({ onReply: (e) => replies.push(e), onNoResponders: () => {} });
    const dest = `${t}.ask`;
    const responder = await env.broker.subscribe({ ...spec, destination: dest, group: "svc" }, (d) => {
      const { replyTo, correlationId } = d.envelope;
      void env.broker.publish(envelope(replyTo!, "answer", { kind: "document", correlationId }), {
        transient: true,
      });
      void d.ack();
    });
    await env.broker.publish(
      envelope(dest, "q", { kind: "command", correlationId: "c1", replyTo: inbox.address("c1") }),
    );
    await until("the reply", () => replies.length === 1);
    expect([replies[0]!.correlationId, bodyOf(replies[0]!)]).toEqual(["c1", "answer"]);
    expect(await stored(`weft_${t}`)).toBe(1); // the request only
    await responder.close();
    await inbox.close();
  });

  it("checks its options, refuses a pattern without a literal first token, and rejects after close", async () => {
    await expect(jetStreamBroker({ servers: SERVERS, stream: { prefix: "a.b" } })).rejects.toThrow(
      /stream.prefix/,
    );
    await expect(jetStreamBroker({ servers: SERVERS, deliverPolicy: "last" as "all" })).rejects.toThrow(
      /deliverPolicy/,
    );
    await expect(jetStreamBroker({ servers: SERVERS, groupMaxAckPending: 0 })).rejects.toThrow(ConfigError);
    await expect(jetStreamBroker({ servers: SERVERS, groupInactiveMs: 1_000 })).rejects.toThrow(
      /groupInactiveMs/,
    );
    await expect(env.broker.subscribe({ ...spec, destination: "*.x", group: "g" }, () => {})).rejects.toThrow(
      ConfigError,
    );
    // a server without JetStream
    const port = await freePort();
    const plain = await startNatsServer(port, "", false);
    const refused = await jetStreamBroker({ servers: `127.0.0.1:${port}` }).catch((e) => e);
    await killed(plain);
    expect([refused.code, refused.reason]).toEqual([Code.UNAVAILABLE, Reason.BROKER_UNAVAILABLE]);
    expect(refused.message).toContain("reach JetStream");
    const b = await jetStreamBroker({ servers: SERVERS });
    await b.close();
    const error = await b.publish(envelope(`${token()}.late`, "x")).catch((e) => e);
    expect([error.code, error.reason]).toEqual([Code.UNAVAILABLE, Reason.BROKER_UNAVAILABLE]);
    expect(error.message).toContain("jetstream: could not publish to");
  });
});
