/**
 * `natsBroker` against the machine's NATS server (127.0.0.1:4222), at the Broker level: what core
 * NATS promises (queue groups, wildcards, no-responders, the in-flight bound) and what it does not.
 */

import type { JsMsg } from "@nats-io/jetstream";
import { type Msg, headers as natsHeaders } from "@nats-io/transport-node";
import { Code, ConfigError, Reason, SILENT_LOGGER, type Telemetry, WeftError } from "@weft/core";
import { type Broker, type Delivery, type Envelope, fromHeaders } from "@weft/messaging";
import { freePort } from "@weft/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { natsBroker } from "../../src/index.ts";
import { entriesOf, headersOfMsg } from "../../src/wire.ts";
import { ackInTurn, bodyOf, ensureNats, envelope, rawConnection, SERVERS, unique, until } from "./helpers.ts";

const spec = { maxInFlight: 16, ackWaitMs: 30_000, partitions: undefined } as const;
let broker: Broker;

beforeAll(async () => {
  ensureNats();
  broker = await natsBroker({ servers: SERVERS });
});
afterAll(() => broker.close());

describe("natsBroker", () => {
  it("delivers a published envelope with its fields and headers, at most once", async () => {
    const dest = `${unique()}.placed`;
    const got: Delivery[] = [];
    const sub = await broker.subscribe({ ...spec, destination: dest, group: undefined }, (d) => got.push(d));
    const sent = envelope(dest, "hello", {
      kind: "command",
      key: "k1",
      correlationId: "c1",
      expiresAt: Date.now() + 60_000,
      headers: { traceparent: "00-abc-def-01", "x-app": "1" },
    });
    await broker.publish(sent);
    await until("the delivery", () => got.length === 1);
    expect({ ...got[0]!.envelope, body: bodyOf(got[0]!) }).toEqual({ ...sent, body: "hello" });
    expect(got[0]!.attempt).toBe(1);
    expect(got[0]!.progress).toBeUndefined();
    await got[0]!.nack(0); // dropped: at-most-once
    await broker.publish(envelope(dest, "second"));
    await until("the second delivery", () => got.length === 2);
    expect(got.map(bodyOf)).toEqual(["hello", "second"]);
    await sub.close();
    await sub.close();
  });

  it("shares a group's messages among its members, and copies them to every group", async () => {
    const dest = `${unique()}.work`;
    const seen = { a1: [] as string[], a2: [] as string[], b: [] as string[] };
    const sink = (into: string[]) => (d: Delivery) => {
      into.push(bodyOf(d));
      void d.ack();
    };
    const subs = await Promise.all([
      broker.subscribe({ ...spec, destination: dest, group: "a" }, sink(seen.a1)),
      broker.subscribe({ ...spec, destination: dest, group: "a" }, sink(seen.a2)),
      broker.subscribe({ ...spec, destination: dest, group: "b" }, sink(seen.b)),
    ]);
    for (let i = 0; i < 200; i++) await broker.publish(envelope(dest, String(i)));
    await until("200 to each group", () => seen.a1.length + seen.a2.length === 200 && seen.b.length === 200);
    const a = [...seen.a1, ...seen.a2].map(Number).sort((x, y) => x - y);
    expect(a).toEqual(Array.from({ length: 200 }, (_, i) => i));
    expect(seen.a1.length).toBeGreaterThan(0);
    expect(seen.a2.length).toBeGreaterThan(0);
    for (const s of subs) await s.close();
  });

  it("subscribes to NATS wildcards: * one token, > the rest", async () => {
    const t = unique();
    const one: string[] = [];
    const rest: string[] = [];
    const s1 = await broker.subscribe({ ...spec, destination: `${t}.*`, group: undefined }, (d) => {
      one.push(d.envelope.destination);
      void d.ack();
    });
    const s2 = await broker.subscribe({ ...spec, destination: `${t}.>`, group: undefined }, (d) => {
      rest.push(d.envelope.destination);
      void d.ack();
    });
    for (const d of [`${t}.a`, `${t}.a.b`, `${t}.c`]) await broker.publish(envelope(d, "x"));
    await until("3 on >", () => rest.length === 3);
    await until("2 on *", () => one.length === 2);
    expect(one.sort()).toEqual([`${t}.a`, `${t}.c`]);
    await s1.close();
    await s2.close();
  });

  it("subscribes to each partition of a partitioned destination and delivers without the suffix", async () => {
    const dest = `${unique()}.part`;
    const got: Envelope[] = [];
    const sub = await broker.subscribe({ ...spec, destination: dest, group: "g", partitions: 3 }, (d) => {
      got.push(d.envelope);
      void d.ack();
    });
    for (let p = 0; p < 3; p++) await broker.publish(envelope(`${dest}.p${p}`, String(p)));
    await until("one per partition", () => got.length === 3);
    expect(got.map((e) => e.destination)).toEqual([dest, dest, dest]);
    await sub.close();
  });

  it("never has more than maxInFlight deliveries outstanding; the others wait for a slot", async () => {
    const dest = `${unique()}.slow`;
    const held: Delivery[] = [];
    let most = 0;
    const sub = await broker.subscribe({ ...spec, destination: dest, group: "g", maxInFlight: 5 }, (d) => {
      held.push(d);
      most = Math.max(most, held.length);
    });
    for (let i = 0; i < 50; i++) await broker.publish(envelope(dest, String(i)));
    await until("5 outstanding", () => held.length === 5);
    const done = await ackInTurn(held, 50);
    expect(most).toBe(5);
    expect(done).toEqual(Array.from({ length: 50 }, (_, i) => String(i)));
    await sub.close();
  });

  it("drops, and reports, what exceeds maxPending while the handlers are busy", async () => {
    const dropped: string[] = [];
    const telemetry: Telemetry = {
      event(name, attributes) {
        if (name === "broker.dropped") dropped.push((attributes as { why: string }).why);
      },
    };
    const warnings: string[] = [];
    const logger = { ...SILENT_LOGGER, warn: (_: unknown, m?: string) => void warnings.push(String(m)) };
    const small = await natsBroker({ servers: SERVERS, maxPending: 10, telemetry, logger });
    const dest = `${unique()}.flood`;
    const held: Delivery[] = [];
    const sub = await small.subscribe({ ...spec, destination: dest, group: undefined, maxInFlight: 1 }, (d) =>
      held.push(d),
    );
    for (let i = 0; i < 30; i++) await small.publish(envelope(dest, String(i)));
    await until("19 dropped", () => dropped.length === 19);
    expect(dropped.every((w) => w === "overflow")).toBe(true);
    expect(warnings).toHaveLength(1);
    const got = await ackInTurn(held, 11);
    expect(got).toEqual(Array.from({ length: 11 }, (_, i) => String(i)));
    await sub.close();
    await small.close();
  });

  it("a subscription stopped right after a publish still delivers it: the stop drains what the server sent", async () => {
    const dest = `${unique()}.draining`;
    const got: Delivery[] = [];
    const sub = await broker.subscribe({ ...spec, destination: dest, group: "g" }, (d) => {
      got.push(d);
      void d.ack();
    });
    // on the same connection the unsubscribe goes out after these: the server routes them back first
    for (let i = 0; i < 10; i++) await broker.publish(envelope(dest, `m${i}`));
    await sub.stop();
    expect(got.map(bodyOf)).toEqual(Array.from({ length: 10 }, (_, i) => `m${i}`));
    await sub.close();
  });

  it("reports no responders for a request nobody listens to, through the one shared inbox", async () => {
    const noResponders: string[] = [];
    const replies: Envelope[] = [];
    const inbox = await broker.openInbox({
      onReply: (e) => replies.push(e),
      onNoResponders: (c) => noResponders.push(c),
    });
    const dest = `${unique()}.ask`;
    await broker.publish(
      envelope(dest, "?", { kind: "command", correlationId: "r1", replyTo: inbox.address("r1") }),
    );
    await until("no responders", () => noResponders.length === 1);
    expect(noResponders).toEqual(["r1"]);

    const responder = await broker.subscribe({ ...spec, destination: dest, group: "svc" }, (d) => {
      const { replyTo, correlationId } = d.envelope;
      void broker.publish(envelope(replyTo!, `re:${bodyOf(d)}`, { kind: "document", correlationId }), {
        transient: true,
      });
      void d.ack();
    });
    for (const c of ["r2", "r3"])
      await broker.publish(
        envelope(dest, c, { kind: "command", correlationId: c, replyTo: inbox.address(c) }),
      );
    await until("two replies", () => replies.length === 2);
    expect(replies.map((r) => [r.correlationId, bodyOf(r)]).sort()).toEqual([
      ["r2", "re:r2"],
      ["r3", "re:r3"],
    ]);
    expect(noResponders).toEqual(["r1"]);
    await responder.close();
    await inbox.close();
    await inbox.close();
  });

  it("interoperates with a raw NATS client: readable weft headers one way, plain messages the other", async () => {
    const nc = await rawConnection();
    const dest = `${unique()}.raw`;
    const raw: { subject: string; headers: Record<string, string>; body: string }[] = [];
    nc.subscribe(dest, {
      callback: (_, m) => {
        raw.push({
          subject: m.subject,
          headers: Object.fromEntries([...(m.headers ?? [])].map(([k, v]) => [k, v.join(",")])),
          body: m.string(),
        });
      },
    });
    await nc.flush();
    const sent = envelope(dest, "from weft", { key: "k", headers: { "x-app": "1" } });
    await broker.publish(sent);
    await until("the raw client's message", () => raw.length === 1);
    expect(raw[0]).toEqual({
      subject: dest,
      body: "from weft",
      headers: {
        "weft-id": sent.id,
        "weft-kind": "event",
        "weft-key": "k",
        "weft-published-at": String(sent.publishedAt),
        "content-type": "text/plain",
        "x-app": "1",
      },
    });

    const got: Envelope[] = [];
    const sub = await broker.subscribe({ ...spec, destination: dest, group: undefined }, (d) =>
      got.push(d.envelope),
    );
    const h = natsHeaders();
    h.set("x-from", "raw");
    nc.publish(dest, "plain", { headers: h });
    nc.publish(dest, "bare");
    await nc.flush();
    await until("two plain messages", () => got.length === 2);
    expect(got.map((e) => [e.kind, e.contentType, bodyOf(e), e.headers])).toEqual([
      ["event", "application/octet-stream", "plain", { "x-from": "raw" }],
      ["event", "application/octet-stream", "bare", {}],
    ]);
    expect(got[0]!.id).not.toBe(got[1]!.id);

    // a raw NATS service answering with msg.respond: its reply reaches the request's inbox
    const service = `${unique()}.svc`;
    nc.subscribe(service, {
      callback: (_, m) => {
        m.respond(`raw:${m.string()}`);
      },
    });
    await nc.flush();
    const replies: Envelope[] = [];
    const inbox = await broker.openInbox({ onReply: (e) => replies.push(e), onNoResponders: () => {} });
    await broker.publish(envelope(service, "q", { correlationId: "c9", replyTo: inbox.address("c9") }));
    await until("the raw reply", () => replies.length === 1);
    expect([replies[0]!.correlationId, bodyOf(replies[0]!)]).toEqual(["c9", "raw:q"]);
    await inbox.close();
    await sub.close();
    await nc.close();
  });

  it("reads a message's header block from its bytes exactly as the client's parser does", async () => {
    const nc = await rawConnection();
    const dest = `${unique()}.block`;
    const got: Msg[] = [];
    nc.subscribe(dest, {
      callback: (_, m) => {
        got.push(m);
      },
    });
    await nc.flush();
    const h = natsHeaders();
    h.append("X-Mixed-Case", "a");
    h.append("x-repeated", "first");
    h.append("x-repeated", "last");
    h.append("x-spaced", "  padded value  ");
    h.append("x-colon", "a: b: c");
    h.append("x-utf8", "naïve ✓");
    h.append("x-empty", "");
    h.append("Nats-Msg-Id", "dedup-1");
    nc.publish(dest, "with headers", { headers: h });
    nc.publish(dest, "none");
    // and Weft's own block, written by headersOf
    await broker.publish(envelope(dest, "weft", { key: "k", headers: { "x-app": "1" } }));
    await nc.flush();
    await until("three messages", () => got.length === 3);
    for (const msg of got) {
      const read = headersOfMsg(msg);
      // a JetStream message is read through the core message it wraps
      expect(headersOfMsg({ msg } as unknown as JsMsg)).toEqual(read);
      // read from the bytes: the client's lazy header parser never ran
      expect((msg as unknown as { _headers?: unknown })._headers).toBeUndefined();
      const slow = entriesOf(msg.headers);
      // an entry per line where the client keeps a name's values together: the last one wins in both
      expect(read.status).toBe(0);
      expect(new Map(read.entries)).toEqual(new Map(slow));
      const fallbacks = { brokerId: "raw", timestamp: 1 };
      expect(fromHeaders(dest, read.entries, msg.data, fallbacks)).toEqual(
        fromHeaders(dest, slow, msg.data, fallbacks),
      );
    }
    // two connections: the messages may arrive in any order
    const byBody = (body: string) => got.find((m) => m.string() === body)!;
    expect(headersOfMsg(byBody("with headers")).entries).toEqual([
      ["X-Mixed-Case", "a"],
      ["x-repeated", "first"],
      ["x-repeated", "last"],
      ["x-spaced", "padded value"],
      ["x-colon", "a: b: c"],
      ["x-utf8", "naïve ✓"],
      ["x-empty", ""],
    ]);
    expect(headersOfMsg(byBody("none"))).toEqual({ status: 0, entries: [] });
    await nc.close();
  });

  it("refuses a header NATS cannot carry as the caller's error, sending nothing", async () => {
    const dest = `${unique()}.bad`;
    const got: Delivery[] = [];
    const sub = await broker.subscribe({ ...spec, destination: dest, group: undefined }, (d) => got.push(d));
    for (const headers of [{ "x-split": "a\r\nweft-kind: command" }, { "x bad": "1" }, { "x:bad": "1" }]) {
      const error = await broker.publish(envelope(dest, "no", { headers })).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConfigError);
    }
    const keyed = await broker.publish(envelope(dest, "no", { key: "a\nb" })).catch((e: unknown) => e);
    expect(keyed).toBeInstanceOf(ConfigError);
    await broker.publish(envelope(dest, "yes"));
    await until("the one good message", () => got.length === 1);
    expect(got.map(bodyOf)).toEqual(["yes"]);
    await sub.close();
  });

  it("checks its options and reports an unreachable server as BROKER_UNAVAILABLE", async () => {
    await expect(natsBroker({ servers: [] })).rejects.toThrow(ConfigError);
    await expect(natsBroker({ servers: SERVERS, maxPending: 0 })).rejects.toThrow(/maxPending/);
    await expect(natsBroker({ servers: SERVERS, connectTimeoutMs: -1 })).rejects.toThrow(/connectTimeoutMs/);
    const port = await freePort();
    const error = await natsBroker({ servers: `127.0.0.1:${port}`, connectTimeoutMs: 500 }).catch((e) => e);
    expect(error).toBeInstanceOf(WeftError);
    expect([error.code, error.reason]).toEqual([Code.UNAVAILABLE, Reason.BROKER_UNAVAILABLE]);
    expect(error.message).toContain(`127.0.0.1:${port}`);
    await expect(
      broker.subscribe({ ...spec, destination: "a b", group: undefined }, () => {}),
    ).rejects.toThrow(ConfigError);
    await expect(
      broker.subscribe({ ...spec, destination: "a", group: undefined, maxInFlight: 0 }, () => {}),
    ).rejects.toThrow(/maxInFlight/);
  });

  it("closes idempotently, closing its subscriptions; later calls reject naming the broker", async () => {
    const b = await natsBroker({ servers: SERVERS });
    const dest = `${unique()}.closing`;
    await b.subscribe({ ...spec, destination: dest, group: undefined }, () => {});
    await b.openInbox({ onReply: () => {}, onNoResponders: () => {} });
    await Promise.all([b.close(), b.close()]);
    await b.close();
    const error = await b.publish(envelope(dest, "late")).catch((e) => e);
    expect([error.code, error.reason]).toEqual([Code.UNAVAILABLE, Reason.BROKER_UNAVAILABLE]);
    expect(error.message).toContain(`nats: could not publish to ${dest}`);
    await expect(b.subscribe({ ...spec, destination: dest, group: undefined }, () => {})).rejects.toThrow(
      /BROKER_UNAVAILABLE|broker is closed/,
    );
  });
});
