import { randomUUID } from "node:crypto";
import {
  type CallContext,
  Code,
  currentCallContext,
  Metadata,
  Reason,
  SILENT_LOGGER,
  WeftError,
} from "@weft/core";
import { NEVER, runWithCallContext } from "@weft/core/internal";
import {
  type Broker,
  type BrokerFeatures,
  createMessenger,
  DEAD_LETTER_HEADER,
  type Destination,
  destination,
  type Messenger,
  type ReceivedMessage,
  type SubscribeOptions,
  type Subscription,
} from "@weft/messaging";
import { pendingRequests } from "@weft/messaging/internal";
import { afterEach, describe, expect, it } from "vitest";
import { until as waitUntil } from "./until.ts";

export interface BrokerConformanceOptions {
  /**
   * The longest wait for something that must happen (a delivery, a redelivery, a drain), in ms.
   * Default 10 s; a slow backend may need more.
   */
  readonly waitMs?: number;
  /** Messages of the counted tests (competing consumers, max in-flight). Default 100. */
  readonly messages?: number;
}

type Factory = () => Promise<Broker>;

interface Body {
  readonly n: number;
  readonly key?: string;
}

/** Fast retries, so a test waits milliseconds for a redelivery, not the defaults' seconds. */
const FAST: SubscribeOptions = { backoff: { initialDelayMs: 10, maxDelayMs: 50 } };

/**
 * Registers the conformance suite of a `Broker` (vitest `describe` blocks) under `name`: every
 * interaction style, failure handling and drain through `createMessenger`, asserting what `features`
 * promises and nothing more. `factory` makes a new connection to one server (messengers on two
 * connections reach each other; each is closed after its test). Every
 * test uses destinations and groups with a random suffix, so the suite runs against a real server
 * repeatedly and in parallel.
 */
export function brokerConformance(
  name: string,
  factory: Factory,
  features: BrokerFeatures,
  options: BrokerConformanceOptions = {},
): void {
  const waitMs = options.waitMs ?? 10_000;
  const count = options.messages ?? 100;

  describe(`${name} broker conformance`, () => {
    const brokers: Broker[] = [];
    const messengers: Messenger[] = [];
    afterEach(async () => {
      await Promise.all(messengers.splice(0).map((m) => m.close({ graceMs: 0 })));
      await Promise.all(brokers.splice(0).map((b) => b.close()));
    });

    /** A messenger on a new broker connection (`shared`: on the test's first connection). */
    async function messenger(shared = true): Promise<Messenger> {
      let broker = shared ? brokers[0] : undefined;
      if (broker === undefined) {
        broker = await factory();
        brokers.push(broker);
      }
      const m = createMessenger({ broker, logger: SILENT_LOGGER });
      messengers.push(m);
      return m;
    }

    function dest(base: string, partitions?: number): Destination<Body> {
      const unique = `conf.${base}.${randomUUID().slice(0, 8)}`;
      return destination<Body>(unique, partitions === undefined ? {} : { partitions });
    }

    function group(base: string): string {
      return `${base}-${randomUUID().slice(0, 8)}`;
    }

    /** Resolves once `check()` is true, polling (there is no event to wait for); fails after `waitMs`. */
    const until = (check: () => boolean, what: string): Promise<void> => waitUntil(check, what, waitMs);

    it("one-way: a message reaches a subscriber with its body, id and kind", async () => {
      const m = await messenger();
      const d = dest("oneway");
      const got: ReceivedMessage<Body>[] = [];
      await m.subscribe(d, (msg) => void got.push(msg), { group: group("g") });
      const id = await m.publish(d, { n: 7 }, { kind: "command" });
      await until(() => got.length === 1, "the message");
      expect(got[0]!.body).toEqual({ n: 7 });
      expect(got[0]!.id).toBe(id);
      expect(got[0]!.kind).toBe("command");
      expect(got[0]!.destination).toBe(d.name);
      expect(got[0]!.attempt).toBe(1);
    });

    it("publish/subscribe: each of two groups gets its own copy of every message", async () => {
      const m = await messenger();
      const d = dest("pubsub");
      const a: number[] = [];
      const b: number[] = [];
      await m.subscribe(d, (msg) => void a.push(msg.body.n), { group: group("a") });
      await m.subscribe(d, (msg) => void b.push(msg.body.n), { group: group("b") });
      for (let n = 0; n < 10; n++) await m.publish(d, { n });
      await until(() => a.length === 10 && b.length === 10, "both copies");
      expect(a.sort((x, y) => x - y)).toEqual([...Array(10).keys()]);
      expect(b.sort((x, y) => x - y)).toEqual([...Array(10).keys()]);
    });

    it(`queue group: ${count} messages over 3 competing consumers, each handled exactly once`, async () => {
      const m = await messenger();
      const d = dest("queue");
      const g = group("workers");
      const seen = new Map<number, number>();
      const per = [0, 0, 0];
      for (let c = 0; c < 3; c++) {
        const consumer = await messenger(false);
        await consumer.subscribe(
          d,
          (msg) => {
            seen.set(msg.body.n, (seen.get(msg.body.n) ?? 0) + 1);
            per[c]!++;
          },
          { group: g },
        );
      }
      await Promise.all(Array.from({ length: count }, (_, n) => m.publish(d, { n })));
      await until(() => seen.size === count, "every message");
      expect([...seen.values()].every((times) => times === 1)).toBe(true);
      expect(per.reduce((x, y) => x + y)).toBe(count);
    });

    it("private subscriptions: each gets a copy of what is published while it is subscribed", async () => {
      const m = await messenger();
      const d = dest("private");
      const a: number[] = [];
      const b: number[] = [];
      const sa = await m.subscribe(d, (msg) => void a.push(msg.body.n));
      await m.subscribe(d, (msg) => void b.push(msg.body.n));
      await m.publish(d, { n: 1 });
      await until(() => a.length === 1 && b.length === 1, "both copies");
      await sa.drain();
      await m.publish(d, { n: 2 });
      await until(() => b.length === 2, "the second message");
      expect(a).toEqual([1]);
      expect(b).toEqual([1, 2]);
    });

    it.runIf(features.wildcards)("wildcards: `*` matches one token, `>` the rest", async () => {
      const m = await messenger();
      const base = `conf.wild.${randomUUID().slice(0, 8)}`;
      const one: string[] = [];
      const rest: string[] = [];
      await m.subscribe(destination<Body>(`${base}.x`), () => {}, {}); // an exact one, to be ignored
      await m.subscribe(
        { ...destination<Body>(`${base}.x`), name: `${base}.*` },
        (msg) => void one.push(msg.destination),
        { group: group("one") },
      );
      await m.subscribe(
        { ...destination<Body>(`${base}.x`), name: `${base}.>` },
        (msg) => void rest.push(msg.destination),
        { group: group("rest") },
      );
      await m.publish(destination<Body>(`${base}.a`), { n: 1 });
      await m.publish(destination<Body>(`${base}.b.c`), { n: 2 });
      await until(() => one.length === 1 && rest.length === 2, "the matching messages");
      expect(one).toEqual([`${base}.a`]);
      expect(rest.sort()).toEqual([`${base}.a`, `${base}.b.c`]);
    });

    it("headers and the propagated context survive; a handler runs in it and a publish carries it on", async () => {
      const m = await messenger();
      const d = dest("ctx");
      const next = dest("ctx-next");
      const deadline = Date.now() + 60_000;
      let inside: CallContext | undefined;
      const relayed: ReceivedMessage<Body>[] = [];
      const first: ReceivedMessage<Body>[] = [];
      await m.subscribe(
        d,
        async (msg) => {
          first.push(msg);
          inside = currentCallContext();
          await m.publish(next, { n: msg.body.n + 1 });
        },
        { group: group("g") },
      );
      await m.subscribe(next, (msg) => void relayed.push(msg), { group: group("g") });
      const propagate = new Metadata({
        traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "weft-ctx-stress": "1",
      });
      await runWithCallContext(
        { deadline, signal: NEVER, propagate, path: "/test.v1.Svc/call", requestHeaders: propagate },
        () => m.publish(d, { n: 1 }, { headers: { "x-app": "yes" } }),
      );
      await until(() => relayed.length === 1, "the relayed message");
      const msg = first[0]!;
      expect(msg.headers.get("x-app")).toBe("yes");
      expect(msg.headers.get("traceparent")).toBe(propagate.get("traceparent"));
      expect(msg.headers.get("weft-ctx-stress")).toBe("1");
      expect(msg.expiresAt).toBe(deadline);
      expect(inside?.deadline).toBe(deadline);
      expect(inside?.propagate.get("weft-ctx-stress")).toBe("1");
      expect(inside?.propagate.get("x-app")).toBeUndefined();
      expect(relayed[0]!.headers.get("traceparent")).toBe(propagate.get("traceparent"));
      expect(relayed[0]!.headers.get("weft-ctx-stress")).toBe("1");
      expect(relayed[0]!.expiresAt).toBe(deadline);
    });

    it("request/reply: 200 concurrent requests, each resolved once with its own reply; none left pending", async () => {
      const m = await messenger();
      const responder = await messenger(false);
      const d = dest("rr");
      await responder.subscribe(
        d,
        async (msg) => {
          await new Promise((r) => setTimeout(r, msg.body.n % 7));
          await msg.reply({ n: msg.body.n * 2 });
        },
        { group: group("responders"), maxInFlight: 64 },
      );
      const replies = await Promise.all(
        Array.from({ length: 200 }, (_, n) =>
          m.request<Body, Body>(d, { n }, { timeoutMs: waitMs }).then((r) => [n, r.n] as const),
        ),
      );
      expect(replies.every(([n, r]) => r === n * 2)).toBe(true);
      expect(pendingRequests(m)).toBe(0);
    });

    it("request/reply: a responder's error rejects with it; a timeout rejects with DEADLINE_EXCEEDED and its late reply is dropped", async () => {
      const m = await messenger();
      const d = dest("rr-fail");
      const late: (() => void)[] = [];
      await m.subscribe(
        d,
        async (msg) => {
          if (msg.body.n === 0)
            return msg.reply(null, {
              error: new WeftError(Code.NOT_FOUND, "no such order", { reason: "ORDER_NOT_FOUND" }),
            });
          // n === 1: answers only once the requester gave up
          await new Promise<void>((r) => late.push(r));
          await msg.reply({ n: 100 });
        },
        { group: group("responders") },
      );
      const error = await m.request<Body, Body>(d, { n: 0 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(WeftError);
      expect((error as WeftError).code).toBe(Code.NOT_FOUND);
      expect((error as WeftError).reason).toBe("ORDER_NOT_FOUND");
      const timedOut = await m.request<Body, Body>(d, { n: 1 }, { timeoutMs: 100 }).catch((e: unknown) => e);
      expect((timedOut as WeftError).code).toBe(Code.DEADLINE_EXCEEDED);
      expect(pendingRequests(m)).toBe(0);
      // the late reply arrives while another request waits: it must not resolve that one
      await until(() => late.length === 1, "the held responder");
      const other = m.request<Body, Body>(d, { n: 0 }, { timeoutMs: waitMs }).catch((e: unknown) => e);
      late[0]!();
      expect(((await other) as WeftError).reason).toBe("ORDER_NOT_FOUND");
      expect(pendingRequests(m)).toBe(0);
    });

    it.runIf(features.noResponders)("no responders: a request nobody listens for fails fast", async () => {
      const m = await messenger();
      const started = Date.now();
      const error = await m
        .request<Body, Body>(dest("nobody"), { n: 1 }, { timeoutMs: waitMs })
        .catch((e: unknown) => e);
      expect((error as WeftError).reason).toBe(Reason.NO_RESPONDERS);
      expect(Date.now() - started).toBeLessThan(waitMs / 2);
      expect(pendingRequests(m)).toBe(0);
    });

    it("gather: until a count, until a `last` reply, until the timeout", async () => {
      const m = await messenger();
      const d = dest("gather");
      for (let i = 0; i < 3; i++)
        await m.subscribe(d, (msg) => msg.reply({ n: i }, { last: msg.body.n === 1 && i === 2 }), {
          group: group(`r${i}`),
        });
      const byCount = await m.gather<Body, Body>(d, { n: 0 }, { count: 2, timeoutMs: waitMs });
      expect(byCount.end).toBe("count");
      expect(byCount.replies).toHaveLength(2);
      const byLast = await m.gather<Body, Body>(d, { n: 1 }, { untilLast: true, timeoutMs: waitMs });
      expect(byLast.end).toBe("last");
      expect(byLast.replies.at(-1)!.body).toEqual({ n: 2 });
      const byTime = await m.gather<Body, Body>(d, { n: 0 }, { count: 10, timeoutMs: 300 });
      expect(byTime.end).toBe("timeout");
      expect(byTime.replies).toHaveLength(3);
      expect(pendingRequests(m)).toBe(0);
    });

    it("retry: a handler that fails twice succeeds at the third delivery", async () => {
      const m = await messenger();
      const d = dest("retry");
      const attempts: number[] = [];
      let done = false;
      await m.subscribe(
        d,
        (msg) => {
          attempts.push(msg.attempt);
          if (msg.attempt < 3) throw new Error("not yet");
          done = true;
        },
        { ...FAST, group: group("g") },
      );
      await m.publish(d, { n: 1 });
      await until(() => done, "the third attempt");
      expect(attempts).toEqual([1, 2, 3]);
    });

    it("max deliveries: then the original message is dead-lettered with the error headers", async () => {
      const m = await messenger();
      const d = dest("dlq");
      const g = group("g");
      const dlq = `dlq.${g}`;
      const letters: ReceivedMessage<Body>[] = [];
      await m.subscribe(destination<Body>(dlq), (msg) => void letters.push(msg), { group: group("dlq") });
      let tries = 0;
      await m.subscribe(
        d,
        () => {
          tries++;
          throw new WeftError(Code.INTERNAL, "always broken");
        },
        { ...FAST, group: g, maxDeliveries: 3 },
      );
      const id = await m.publish(d, { n: 42 }, { headers: { "x-app": "kept" } });
      await until(() => letters.length === 1, "the dead letter");
      const letter = letters[0]!;
      expect(tries).toBe(3);
      expect(letter.id).toBe(id);
      expect(letter.body).toEqual({ n: 42 });
      expect(letter.headers.get("x-app")).toBe("kept");
      expect(letter.headers.get(DEAD_LETTER_HEADER.reason)).toBe(Reason.MAX_DELIVERIES);
      expect(letter.headers.get(DEAD_LETTER_HEADER.error)).toContain("always broken");
      expect(letter.headers.get(DEAD_LETTER_HEADER.code)).toBe(String(Code.INTERNAL));
      expect(letter.headers.get(DEAD_LETTER_HEADER.attempts)).toBe("3");
      expect(letter.headers.get(DEAD_LETTER_HEADER.destination)).toBe(d.name);
      expect(letter.headers.get(DEAD_LETTER_HEADER.group)).toBe(g);
      expect(Number(letter.headers.get(DEAD_LETTER_HEADER.at))).toBeGreaterThan(0);
    });

    it("expired: a message past its expiry is not handled but dead-lettered with MESSAGE_EXPIRED", async () => {
      const m = await messenger();
      const d = dest("expired");
      const g = group("g");
      const letters: ReceivedMessage<Body>[] = [];
      await m.subscribe(destination<Body>(`dlq.${g}`), (msg) => void letters.push(msg), {
        group: group("dlq"),
      });
      let handled = 0;
      await m.subscribe(d, () => void handled++, { group: g });
      const spent = new Metadata();
      await runWithCallContext(
        { deadline: Date.now() - 1, signal: NEVER, propagate: spent, path: "/t", requestHeaders: spent },
        () => m.publish(d, { n: 1 }),
      );
      await until(() => letters.length === 1, "the dead letter");
      expect(handled).toBe(0);
      expect(letters[0]!.headers.get(DEAD_LETTER_HEADER.reason)).toBe(Reason.MESSAGE_EXPIRED);
    });

    /**
     * Publishes `keys` × `per` keyed messages in order; the handler fails the first attempt of every
     * 7th. With `churn`, halfway through the last consumer drains and `churn` joins the group.
     */
    async function keyedRun(
      d: Destination<Body>,
      consumers: Messenger[],
      keys: number,
      per: number,
      churn?: Messenger,
    ) {
      const g = group("ordered");
      const handled = new Map<string, number[]>();
      const busy = new Set<string>();
      let overlaps = 0;
      let total = 0;
      const join = (c: Messenger): Promise<Subscription> =>
        c.subscribe(
          d,
          async (msg) => {
            const key = msg.key!;
            if (busy.has(key)) overlaps++;
            busy.add(key);
            await new Promise((r) => setTimeout(r, msg.body.n % 3));
            busy.delete(key);
            if (msg.body.n % 7 === 3 && msg.attempt === 1) throw new Error("transient");
            handled.set(key, [...(handled.get(key) ?? []), msg.body.n]);
            total++;
          },
          { ...FAST, group: g, maxInFlight: 8 },
        );
      const subscriptions: Subscription[] = [];
      for (const c of consumers) subscriptions.push(await join(c));
      const m = consumers[0]!;
      const all = keys * per;
      for (let n = 0; n < all; n++) {
        await m.publish(d, { n }, { key: `k${n % keys}` });
        if (churn !== undefined && n === all / 2) {
          await Promise.all([subscriptions.at(-1)!.drain({ graceMs: waitMs }), join(churn)]);
        }
      }
      await until(() => total === all, "every keyed message");
      expect(overlaps).toBe(0);
      for (const [key, ns] of handled) {
        const k = Number(key.slice(1));
        expect(ns).toEqual(Array.from({ length: per }, (_, i) => i * keys + k));
      }
    }

    it("per-key order within one consumer, with failures: one at a time, in publish order", async () => {
      await keyedRun(dest("keyed"), [await messenger()], 5, 20);
    });

    it.runIf(features.ordering)(
      "per-key order across 4 consumers of a partitioned destination, with failures, one leaving and one joining midway",
      async () => {
        const consumers = [
          await messenger(false),
          await messenger(false),
          await messenger(false),
          await messenger(false),
        ];
        await keyedRun(dest("partitioned", 4), consumers, 10, 20, await messenger(false));
      },
    );

    it.runIf(features.atLeastOnce)(
      "redelivery after nack: the message comes back with the next attempt number",
      async () => {
        const m = await messenger();
        const d = dest("nack");
        const attempts: number[] = [];
        await m.subscribe(
          d,
          async (msg) => {
            attempts.push(msg.attempt);
            if (msg.attempt === 1) await msg.nack({ delayMs: 0 });
            else await msg.ack();
          },
          { group: group("g"), ack: "manual" },
        );
        await m.publish(d, { n: 1 });
        await until(() => attempts.length === 2, "the redelivery");
        expect(attempts).toEqual([1, 2]);
      },
    );

    it.runIf(features.delayedRedelivery)(
      "delayed redelivery: a nack with a delay holds the message back that long",
      async () => {
        const m = await messenger();
        const d = dest("delayed");
        const at: number[] = [];
        await m.subscribe(
          d,
          async (msg) => {
            at.push(Date.now());
            if (msg.attempt === 1) await msg.nack({ delayMs: 300 });
            else await msg.ack();
          },
          { group: group("g"), ack: "manual" },
        );
        await m.publish(d, { n: 1 });
        await until(() => at.length === 2, "the delayed redelivery");
        expect(at[1]! - at[0]!).toBeGreaterThanOrEqual(280);
      },
    );

    it(`max in-flight: 4 handlers at most at once over ${count} messages (counted)`, async () => {
      const m = await messenger();
      const d = dest("inflight");
      let running = 0;
      let most = 0;
      let done = 0;
      let sub: Subscription | undefined;
      sub = await m.subscribe(
        d,
        async () => {
          running++;
          most = Math.max(most, running, sub?.inFlight ?? 0);
          await new Promise((r) => setTimeout(r, 2));
          running--;
          done++;
        },
        { group: group("g"), maxInFlight: 4 },
      );
      await Promise.all(Array.from({ length: count }, (_, n) => m.publish(d, { n })));
      await until(() => done === count, "every message");
      expect(most).toBeLessThanOrEqual(4);
      expect(most).toBeGreaterThan(1);
    });

    it("drain: handlers in flight finish within the grace period and are acked", async () => {
      const m = await messenger();
      const d = dest("drain");
      const release: (() => void)[] = [];
      let finished = 0;
      const sub = await m.subscribe(
        d,
        async () => {
          await new Promise<void>((r) => release.push(r));
          finished++;
        },
        { group: group("g") },
      );
      for (let n = 0; n < 3; n++) await m.publish(d, { n });
      await until(() => release.length === 3, "three handlers running");
      expect(sub.inFlight).toBe(3);
      const drained = sub.drain({ graceMs: waitMs });
      for (const r of release) r();
      expect(await drained).toEqual({ finished: 3, abandoned: 0 });
      expect(finished).toBe(3);
    });

    it.runIf(features.atLeastOnce)(
      "drain: a handler still running at the end of the grace is aborted and its message redelivered",
      async () => {
        const m = await messenger();
        const other = await messenger(false);
        const d = dest("drain-redeliver");
        const g = group("g");
        let aborted = false;
        const sub = await m.subscribe(
          d,
          (msg) =>
            new Promise<void>((_, reject) => {
              msg.signal.addEventListener("abort", () => {
                aborted = true;
                reject(msg.signal.reason);
              });
            }),
          { group: g },
        );
        await m.publish(d, { n: 1 });
        await until(() => sub.inFlight === 1, "the handler running");
        const redelivered: number[] = [];
        await other.subscribe(d, (msg) => void redelivered.push(msg.attempt), { group: g });
        expect(await sub.drain({ graceMs: 50 })).toEqual({ finished: 0, abandoned: 1 });
        expect(aborted).toBe(true);
        await until(() => redelivered.length === 1, "the redelivery");
        expect(redelivered[0]).toBeGreaterThanOrEqual(2);
      },
    );
  });
}
