/**
 * `listDeadLetters`/`replayDeadLetters` on the memory broker (the dead-letter suite every browsing
 * backend runs), `readDeadLetter`, and their bad input.
 */
import { Code, stableHash } from "@weft/core";
import { deadLetterConformance } from "@weft/testing";
import { afterAll, describe, expect, it } from "vitest";
import {
  type Broker,
  DEAD_LETTER_HEADER,
  type Envelope,
  listDeadLetters,
  memoryBroker,
  newMessageId,
  readDeadLetter,
  replayDeadLetters,
} from "../src/index.ts";

// "connections" to one in-process broker: closing one leaves the broker to the others
const shared = memoryBroker();
afterAll(() => shared.close());
deadLetterConformance("memory", async () => ({ ...viewOf(shared) }));

function viewOf(broker: Broker): Broker {
  return {
    name: broker.name,
    features: broker.features,
    publish: (e, o) => broker.publish(e, o),
    subscribe: (s, sink) => broker.subscribe(s, sink),
    openInbox: (h) => broker.openInbox(h),
    createGroup: (d, g) => broker.createGroup!(d, g),
    browse: (d, o) => broker.browse!(d, o),
    close: () => Promise.resolve(),
  };
}

const letter = (headers: Record<string, string>): Envelope => ({
  id: newMessageId(),
  kind: "command",
  destination: "dlq.workers",
  key: "k1",
  publishedAt: 1,
  contentType: "application/json",
  headers,
  body: new Uint8Array([1]),
});

describe("readDeadLetter", () => {
  it("reads the weft-dlq-* headers and gives back the original message without them", () => {
    const l = letter({
      "x-app": "1",
      [DEAD_LETTER_HEADER.reason]: "MAX_DELIVERIES",
      [DEAD_LETTER_HEADER.error]: "boom",
      [DEAD_LETTER_HEADER.code]: "13",
      [DEAD_LETTER_HEADER.attempts]: "5",
      [DEAD_LETTER_HEADER.destination]: "orders.placed",
      [DEAD_LETTER_HEADER.group]: "workers",
      [DEAD_LETTER_HEADER.at]: "1700000000000",
    });
    const d = readDeadLetter(l);
    expect(d).toMatchObject({
      reason: "MAX_DELIVERIES",
      error: "boom",
      code: 13,
      attempts: 5,
      group: "workers",
      at: 1_700_000_000_000,
    });
    expect(d.original).toEqual({ ...l, destination: "orders.placed", headers: { "x-app": "1" } });
  });

  it("refuses a message without a valid weft-dlq-destination (MALFORMED_MESSAGE)", () => {
    expect(() => readDeadLetter(letter({}))).toThrow(/not a dead letter/);
    expect(() => readDeadLetter(letter({ [DEAD_LETTER_HEADER.destination]: "a.*" }))).toThrow(
      expect.objectContaining({ reason: "MALFORMED_MESSAGE", code: Code.INVALID_ARGUMENT }),
    );
  });
});

describe("listDeadLetters and replayDeadLetters input", () => {
  it("throws ConfigError for a bad destination, limit, or neither/both of ids and all", async () => {
    const b = memoryBroker();
    await expect(listDeadLetters(b, "dlq.*")).rejects.toThrow(/destination/);
    await expect(listDeadLetters(b, "dlq.x", { limit: 0 })).rejects.toThrow(/"limit"/);
    await expect(replayDeadLetters(b, "dlq.x", {})).rejects.toThrow(/"ids"/);
    await expect(replayDeadLetters(b, "dlq.x", { ids: ["a"], all: true })).rejects.toThrow(/"ids"/);
    await expect(replayDeadLetters(b, "dlq.x", { all: true, partitions: 0 })).rejects.toThrow(/"partitions"/);
    await b.close();
  });

  it("rejects with UNIMPLEMENTED on a broker that cannot browse", async () => {
    const { browse: _, ...rest } = viewOf(memoryBroker());
    await expect(listDeadLetters(rest, "dlq.x")).rejects.toMatchObject({ code: Code.UNIMPLEMENTED });
  });

  it("republishes to the key's partition when given the destination's partitions", async () => {
    const b = memoryBroker();
    await b.createGroup!("dlq.p", "dlq");
    const seen: string[] = [];
    await b.subscribe(
      { destination: "orders.>", group: undefined, maxInFlight: 1, ackWaitMs: 1000, partitions: undefined },
      (d) => void d.ack().then(() => seen.push(d.envelope.destination)),
    );
    const l = { ...letter({ [DEAD_LETTER_HEADER.destination]: "orders" }), destination: "dlq.p" };
    await b.publish(l);
    const result = await replayDeadLetters(b, "dlq.p", { all: true, partitions: 4, timeoutMs: 2000 });
    expect(result.replayed).toEqual([l.id]);
    await expect.poll(() => seen).toEqual([`orders.p${stableHash("k1") % 4}`]);
    await b.close();
  });
});
