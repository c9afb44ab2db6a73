import { randomUUID } from "node:crypto";
import { Reason, SILENT_LOGGER } from "@weft/core";
import {
  type Broker,
  createMessenger,
  DEAD_LETTER_HEADER,
  destination,
  listDeadLetters,
  type Messenger,
  type ReceivedMessage,
  replayDeadLetters,
} from "@weft/messaging";
import { afterEach, describe, expect, it } from "vitest";

export interface DeadLetterConformanceOptions {
  /** The longest wait for something that must happen (dead letters to arrive), in ms. Default 10 s. */
  readonly waitMs?: number;
  /**
   * The first token of every destination the suite uses (`<prefix>.orders.<random>`, and its dead
   * letters in `<prefix>-dlq.<random>`: another first token, as a JetStream stream deduplicates the
   * dead letter, which keeps the message's id, if it lands in the original's stream), so a backend's
   * test can clean up what the suite made. Default `dlqconf`.
   */
  readonly prefix?: string;
  /**
   * How long to wait after the messages were first published before replaying them, in ms: a
   * backend that deduplicates publishes by message id (JetStream's duplicate window) drops a replay
   * made within its window. Default 0.
   */
  readonly replayAfterMs?: number;
  /**
   * Whether a dead letter replayed ahead of older ones leaves the listing at once. False for a
   * backend that lists from the group's ack floor (JetStream): it leaves once the older ones are
   * replayed too. Default true.
   */
  readonly outOfOrderAcks?: boolean;
}

interface Body {
  readonly n: number;
}

/**
 * Registers the suite of what `weft dlq` relies on (vitest `describe` blocks) for a broker that can
 * browse (`Broker.browse`, and `createGroup` where groups are durable): dead letters kept for
 * `DEAD_LETTER_GROUP` from a subscription's start, listed without being consumed, replayed by id and
 * all at once to their original destination with the same id and without the `weft-dlq-*` headers,
 * and gone from the listing once replayed (at once, or once older ones are too: `outOfOrderAcks`). `factory` makes a new connection to one server; every test
 * uses destinations and groups with a random suffix.
 */
export function deadLetterConformance(
  name: string,
  factory: () => Promise<Broker>,
  options: DeadLetterConformanceOptions = {},
): void {
  const waitMs = options.waitMs ?? 10_000;
  const prefix = options.prefix ?? "dlqconf";
  const outOfOrderAcks = options.outOfOrderAcks ?? true;
  /** Waits out a deduplication window before a replay. */
  const beforeReplay = () => new Promise((r) => setTimeout(r, options.replayAfterMs ?? 0));

  describe(`${name} dead letters (weft dlq)`, () => {
    const brokers: Broker[] = [];
    const messengers: Messenger[] = [];
    afterEach(async () => {
      await Promise.all(messengers.splice(0).map((m) => m.close({ graceMs: 0 })));
      await Promise.all(brokers.splice(0).map((b) => b.close()));
    });

    async function until(check: () => Promise<boolean> | boolean, what: string): Promise<void> {
      const end = Date.now() + waitMs;
      while (!(await check())) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    }

    /**
     * A subscription of a new group whose handler fails (one delivery each, so at once dead-lettered)
     * while `failing.on`, and records what it handles otherwise; `count` messages published to it and
     * dead-lettered. Returns their ids in publish order.
     */
    async function withDeadLetters(count: number) {
      const broker = await factory();
      brokers.push(broker);
      const m = createMessenger({ broker, logger: SILENT_LOGGER });
      messengers.push(m);
      const suffix = randomUUID().slice(0, 8);
      const d = destination<Body>(`${prefix}.orders.${suffix}`);
      const group = `g-${suffix}`;
      const dlq = `${prefix}-dlq.${suffix}`;
      const failing = { on: true };
      const handled: ReceivedMessage<Body>[] = [];
      await m.subscribe(
        d,
        (msg) => {
          if (failing.on) throw new Error(`refused ${msg.body.n}`);
          handled.push(msg);
        },
        { group, maxDeliveries: 1, deadLetter: dlq },
      );
      const ids: string[] = [];
      for (let n = 0; n < count; n++) ids.push(await m.publish(d, { n }, { headers: { "x-app": `v${n}` } }));
      await until(
        async () => (await listDeadLetters(broker, dlq, { limit: count + 1 })).length === count,
        `${count} dead letters`,
      );
      return { broker, d, group, dlq, failing, handled, ids };
    }

    it("lists dead letters oldest first with their reason, attempts, origin and group, without consuming them", async () => {
      const { broker, d, group, dlq, ids } = await withDeadLetters(3);
      const first = await listDeadLetters(broker, dlq, { limit: 10 });
      const again = await listDeadLetters(broker, dlq, { limit: 10 });
      expect(first.map((l) => l.letter.id)).toEqual(ids);
      expect(again.map((l) => l.letter.id)).toEqual(ids);
      const letter = first[1]!;
      expect(letter.problem).toBeUndefined();
      expect(letter.deadLetter).toMatchObject({
        reason: Reason.MAX_DELIVERIES,
        error: "refused 1",
        attempts: 1,
        group,
      });
      expect(letter.deadLetter!.original.destination).toBe(d.name);
      expect(letter.deadLetter!.original.headers).toMatchObject({ "x-app": "v1" });
      expect(letter.letter.headers[DEAD_LETTER_HEADER.destination]).toBe(d.name);
      expect((await listDeadLetters(broker, dlq, { limit: 2 })).map((l) => l.letter.id)).toEqual(
        ids.slice(0, 2),
      );
    });

    it("replays chosen dead letters to their destination with the same id and no weft-dlq-* headers; only those leave the listing", async () => {
      const { broker, dlq, failing, handled, ids } = await withDeadLetters(3);
      failing.on = false;
      await beforeReplay();
      const result = await replayDeadLetters(broker, dlq, { ids: [ids[1]!], timeoutMs: waitMs });
      expect(result).toEqual({ replayed: [ids[1]], failed: [], notFound: [] });
      await until(() => handled.length === 1, "the replayed message");
      const back = handled[0]!;
      expect(back.id).toBe(ids[1]);
      expect(back.body).toEqual({ n: 1 });
      expect(back.headers.get("x-app")).toBe("v1");
      expect([...back.headers.keys()].filter((k) => k.startsWith("weft-dlq-"))).toEqual([]);
      const left = await listDeadLetters(broker, dlq, { limit: 10 });
      expect(left.map((l) => l.letter.id)).toEqual(outOfOrderAcks ? [ids[0], ids[2]] : ids);
    });

    it("replays every dead letter with all: each handled once, none left (counted)", async () => {
      const count = 20;
      const { broker, dlq, failing, handled, ids } = await withDeadLetters(count);
      failing.on = false;
      await beforeReplay();
      const result = await replayDeadLetters(broker, dlq, { all: true, timeoutMs: waitMs });
      expect([...result.replayed].sort()).toEqual([...ids].sort());
      expect(result.failed).toEqual([]);
      expect(result.notFound).toEqual([]);
      await until(() => handled.length === count, `${count} replayed messages`);
      expect(new Set(handled.map((h) => h.id)).size).toBe(count);
      expect(await listDeadLetters(broker, dlq, { limit: 100 })).toEqual([]);
    });

    it("reports an id that is not a dead letter there as not found, and leaves the others", async () => {
      const { broker, dlq, ids } = await withDeadLetters(1);
      const result = await replayDeadLetters(broker, dlq, { ids: ["no-such-id"], timeoutMs: 300 });
      expect(result).toEqual({ replayed: [], failed: [], notFound: ["no-such-id"] });
      expect((await listDeadLetters(broker, dlq, { limit: 10 })).map((l) => l.letter.id)).toEqual(ids);
    });
  });
}
