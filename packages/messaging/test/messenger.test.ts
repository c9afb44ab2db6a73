import {
  Code,
  ConfigError,
  createClient,
  createMemoryTransport,
  createServer,
  defineService,
  Metadata,
  messageType,
  Reason,
  SILENT_LOGGER,
  type Telemetry,
  unary,
  WeftError,
  type WeftEventName,
  type WeftEvents,
} from "@weft/core";
import { NEVER, runWithCallContext } from "@weft/core/internal";
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  type Broker,
  type BrokerSubscription,
  createMessenger,
  DEAD_LETTER_HEADER,
  type Delivery,
  type DeliverySink,
  destination,
  type Envelope,
  envelopeOf,
  type MessageInterceptor,
  memoryBroker,
  newMessageId,
  type ReceivedMessage,
} from "../src/index.ts";
import { pendingRequests } from "../src/internal.ts";

interface Body {
  readonly n: number;
}

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  vi.useRealTimers();
  for (const c of cleanup.splice(0).reverse()) await c();
});

function setup(options: { interceptors?: MessageInterceptor[]; telemetry?: Telemetry } = {}) {
  const broker = memoryBroker();
  const messenger = createMessenger({ broker, logger: SILENT_LOGGER, ...options });
  cleanup.push(
    () => broker.close(),
    () => messenger.close({ graceMs: 0 }),
  );
  return { broker, messenger };
}

/** Records every event. */
function recorder() {
  const events: [WeftEventName, unknown][] = [];
  const telemetry: Telemetry = { event: (name, attributes) => void events.push([name, attributes]) };
  const of = <N extends WeftEventName>(name: N): WeftEvents[N][] =>
    events.filter(([n]) => n === name).map(([, a]) => a as WeftEvents[N]);
  return { telemetry, of };
}

/** Resolves when `check()` holds; there is no event to wait for. Real time only. */
async function until(check: () => boolean): Promise<void> {
  const end = Date.now() + 5000;
  while (!check()) {
    if (Date.now() > end) throw new Error("condition not reached");
    await new Promise((r) => setTimeout(r, 2));
  }
}

describe("options are checked up front", () => {
  it("refuses a missing broker, bad interceptors, an unknown serializer", () => {
    expect(() => createMessenger({ broker: {} as Broker })).toThrow(ConfigError);
    expect(() => createMessenger({ broker: memoryBroker(), interceptors: [1 as never] })).toThrow(
      /interceptors/,
    );
    expect(() => createMessenger({ broker: memoryBroker(), serializer: "xml" as never })).toThrow(
      /serializer/,
    );
  });

  it("refuses bad subscription options and reserved headers, naming the option", async () => {
    const { messenger } = setup();
    const d = destination<Body>("opts.a");
    await expect(messenger.subscribe(d, () => {}, { maxInFlight: 0 })).rejects.toThrow(/"maxInFlight"/);
    await expect(messenger.subscribe(d, () => {}, { maxDeliveries: 1.5 })).rejects.toThrow(/"maxDeliveries"/);
    await expect(messenger.subscribe(d, () => {}, { group: "a.b" })).rejects.toThrow(/"group"/);
    await expect(messenger.subscribe(d, () => {}, { backoff: { initialDelayMs: -1 } })).rejects.toThrow(
      /"backoff.initialDelayMs"/,
    );
    expect(() => messenger.publish(d, { n: 1 }, { headers: { "weft-id": "x" } })).toThrow(/"headers"/);
    expect(() => messenger.publish(d, { n: 1 }, { ttlMs: 0 })).toThrow(/"ttlMs"/);
  });
});

describe("the call context", () => {
  const Lookup = defineService("test.v1.Lookup", {
    get: unary(
      messageType<{ id: string }>(),
      messageType<{ headers: Record<string, string>; deadline: number | null }>(),
    ),
  });

  it("an RPC call made in a handler carries the message's propagated headers and its deadline", async () => {
    const server = createServer({ onError: () => {} });
    server.register(Lookup, {
      get: (_req, ctx) => ({ headers: ctx.requestHeaders.toJSON(), deadline: ctx.deadline ?? null }),
    });
    const transport = createMemoryTransport(server);
    cleanup.push(
      async () => void (await server.shutdown({ timeoutMs: 100 })),
      () => transport.close(),
    );
    const client = createClient(Lookup, transport);
    const { messenger } = setup();
    const d = destination<Body>("ctx.rpc");
    const seen: { headers: Record<string, string>; deadline: number | null }[] = [];
    await messenger.subscribe(d, async () => void seen.push(await client.get({ id: "1" })), { group: "g" });
    const deadline = Date.now() + 30_000;
    const propagate = new Metadata({
      traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      "weft-ctx-stress": "1",
    });
    await runWithCallContext(
      { deadline, signal: NEVER, propagate, path: "/x", requestHeaders: propagate },
      () => messenger.publish(d, { n: 1 }, { headers: { "x-private": "not propagated" } }),
    );
    await until(() => seen.length === 1);
    expect(seen[0]!.headers.traceparent).toBe(propagate.get("traceparent"));
    expect(seen[0]!.headers["weft-ctx-stress"]).toBe("1");
    expect(seen[0]!.headers["x-private"]).toBeUndefined();
    // the deadline crosses as a timeout: within a few ms of the message's expiry
    expect(Math.abs(seen[0]!.deadline! - deadline)).toBeLessThan(1000);
  });

  it("a ttl and an inherited deadline: the earlier wins", async () => {
    const { messenger } = setup();
    const d = destination<Body>("ctx.ttl");
    const got: ReceivedMessage<Body>[] = [];
    await messenger.subscribe(d, (m) => void got.push(m), { group: "g" });
    const deadline = Date.now() + 60_000;
    const md = new Metadata();
    await runWithCallContext(
      { deadline, signal: NEVER, propagate: md, path: "/x", requestHeaders: md },
      async () => {
        await messenger.publish(d, { n: 1 }, { ttlMs: 1000 });
        await messenger.publish(d, { n: 2 }, { ttlMs: 600_000 });
      },
    );
    await until(() => got.length === 2);
    expect(got[0]!.expiresAt!).toBeLessThan(deadline);
    expect(got[1]!.expiresAt).toBe(deadline);
  });
});

describe("failures", () => {
  it("a keyed message is retried locally after the backoff; a later one of its key waits, other keys pass", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval", "Date"] });
    const { telemetry, of } = recorder();
    const { messenger } = setup({ telemetry });
    const d = destination<Body>("fail.keyed");
    const log: string[] = [];
    await messenger.subscribe(
      d,
      (m) => {
        log.push(`${m.key}:${m.body.n}@${m.attempt}`);
        if (m.body.n === 1 && m.attempt < 3) throw new Error("boom");
      },
      { group: "g", backoff: { initialDelayMs: 1000, maxDelayMs: 10_000 } },
    );
    await messenger.publish(d, { n: 1 }, { key: "a" });
    await messenger.publish(d, { n: 2 }, { key: "a" });
    await messenger.publish(d, { n: 3 }, { key: "b" });
    await vi.advanceTimersByTimeAsync(0);
    expect(log).toEqual(["a:1@1", "b:3@1"]);
    await vi.advanceTimersByTimeAsync(700); // the first backoff is 1000 ms ± 20%
    expect(log).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(600);
    expect(log).toEqual(["a:1@1", "b:3@1", "a:1@2"]);
    await vi.advanceTimersByTimeAsync(2500); // the second: 2000 ms ± 20%
    expect(log).toEqual(["a:1@1", "b:3@1", "a:1@2", "a:1@3", "a:2@1"]);
    const redelivered = of("message.redelivered");
    expect(redelivered.map((e) => e.attempt)).toEqual([2, 3]);
    expect(redelivered[0]!.delayMs).toBeGreaterThanOrEqual(800);
    expect(redelivered[0]!.delayMs).toBeLessThanOrEqual(1200);
  });

  it("an unkeyed message on a backend with delayed redelivery is nacked with the backoff (its slot freed)", async () => {
    const broker = memoryBroker();
    const nacks: number[] = [];
    const spy: Broker = {
      ...broker,
      name: broker.name,
      features: broker.features,
      publish: (e, o) => broker.publish(e, o),
      openInbox: (h) => broker.openInbox(h),
      close: () => broker.close(),
      subscribe: (spec, sink) =>
        broker.subscribe(spec, (delivery) =>
          sink({
            envelope: delivery.envelope,
            attempt: delivery.attempt,
            ack: () => delivery.ack(),
            nack: (ms) => {
              nacks.push(ms);
              return delivery.nack(ms);
            },
          }),
        ),
    };
    const messenger = createMessenger({ broker: spy, logger: SILENT_LOGGER });
    cleanup.push(
      () => broker.close(),
      () => messenger.close({ graceMs: 0 }),
    );
    const d = destination<Body>("fail.unkeyed");
    const attempts: number[] = [];
    await messenger.subscribe(
      d,
      (m) => {
        attempts.push(m.attempt);
        if (m.attempt === 1) throw new Error("once");
      },
      { group: "g", backoff: { initialDelayMs: 20, maxDelayMs: 20 } },
    );
    await messenger.publish(d, { n: 1 });
    await until(() => attempts.length === 2);
    expect(attempts).toEqual([1, 2]);
    expect(nacks).toHaveLength(1);
    expect(nacks[0]!).toBeGreaterThanOrEqual(16);
  });

  it("a delivery whose handler runs (or waits for a retry) reports progress every ackWaitMs / 2", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval", "Date"] });
    const { broker, published, deliver } = handBroker();
    let progress = 0;
    const messenger = createMessenger({ broker, logger: SILENT_LOGGER });
    let release!: () => void;
    await messenger.subscribe(
      destination<Body>("slow.a"),
      (m) => (m.attempt === 1 ? new Promise<void>((r) => (release = r)) : undefined),
      { group: "g", ackWaitMs: 1000 },
    );
    const envelope: Envelope = {
      id: newMessageId(),
      kind: "event",
      destination: "slow.a",
      publishedAt: Date.now(),
      contentType: "application/json",
      headers: {},
      body: new TextEncoder().encode("{}"),
    };
    deliver(envelope, undefined, () => void progress++);
    await vi.advanceTimersByTimeAsync(2100);
    expect(progress).toBe(4);
    release();
    await vi.advanceTimersByTimeAsync(10);
    await vi.advanceTimersByTimeAsync(2000);
    expect(progress).toBe(4);
    expect(published).toHaveLength(0);
  });

  /** A broker whose one subscription gets the deliveries the test hands it. */
  function handBroker() {
    const published: Envelope[] = [];
    let sink: DeliverySink | undefined;
    const broker: Broker = {
      name: "hand",
      features: {
        persistent: false,
        atLeastOnce: false,
        queueGroups: true,
        ordering: false,
        wildcards: false,
        delayedRedelivery: false,
        noResponders: false,
      },
      publish: async (e) => void published.push(e),
      subscribe: async (_spec, s): Promise<BrokerSubscription> => {
        sink = s;
        return { stop: async () => {}, close: async () => {} };
      },
      openInbox: async () => ({ address: () => "inbox", close: async () => {} }),
      close: async () => {},
    };
    const settled: string[] = [];
    const deliver = (envelope: Envelope, malformed?: WeftError, progress?: () => void): void =>
      sink!({
        envelope,
        attempt: 1,
        malformed,
        progress,
        ack: async () => void settled.push(`ack ${envelope.id}`),
        nack: async () => void settled.push(`nack ${envelope.id}`),
      } as Delivery);
    return { broker, published, settled, deliver };
  }

  it("a malformed message is dead-lettered at once (MALFORMED_MESSAGE), never handled", async () => {
    const { broker, published, settled, deliver } = handBroker();
    const messenger = createMessenger({ broker, logger: SILENT_LOGGER });
    let handled = 0;
    await messenger.subscribe(destination<Body>("bad.in"), () => void handled++, { group: "g" });
    const { envelope, malformed } = envelopeOf(
      "bad.in",
      { "weft-id": "id-1", "weft-kind": "rumour", "x-app": "1" },
      new TextEncoder().encode("{}"),
    );
    expect(malformed?.reason).toBe(Reason.MALFORMED_MESSAGE);
    deliver(envelope, malformed);
    await until(() => settled.length === 1);
    expect(handled).toBe(0);
    expect(settled).toEqual(["ack id-1"]);
    expect(published[0]!.destination).toBe("dlq.g");
    expect(published[0]!.id).toBe("id-1");
    expect(published[0]!.headers["x-app"]).toBe("1");
    expect(published[0]!.headers[DEAD_LETTER_HEADER.reason]).toBe(Reason.MALFORMED_MESSAGE);
  });

  it("newMessageId: UUIDv7 layout, its time first, 10,000 distinct", () => {
    const ids = Array.from({ length: 10_000 }, () => newMessageId(0x0123_4567_89ab));
    for (const id of ids) expect(id).toMatch(/^01234567-89ab-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(new Set(ids).size).toBe(10_000);
  });

  it("envelopeOf reads headers given as an iterator once, keeping them on the malformed path", () => {
    function* headers(): Generator<[string, string]> {
      yield ["weft-id", "id-2"];
      yield ["weft-kind", "rumour"];
      yield ["x-app", "1"];
    }
    const { envelope, malformed } = envelopeOf("bad.in", headers(), new Uint8Array());
    expect(malformed?.reason).toBe(Reason.MALFORMED_MESSAGE);
    expect(envelope.id).toBe("id-2");
    expect(envelope.headers).toEqual({ "x-app": "1" });
  });

  it("a body that does not decode is dead-lettered at once (DECODE_FAILED)", async () => {
    const { broker, published, settled, deliver } = handBroker();
    const messenger = createMessenger({ broker, logger: SILENT_LOGGER });
    await messenger.subscribe(destination<Body>("bad.body"), () => {}, { group: "g" });
    deliver({
      id: newMessageId(),
      kind: "event",
      destination: "bad.body",
      publishedAt: Date.now(),
      contentType: "application/json",
      headers: {},
      body: new TextEncoder().encode("{not json"),
    });
    await until(() => settled.length === 1);
    expect(published[0]!.headers[DEAD_LETTER_HEADER.reason]).toBe(Reason.DECODE_FAILED);
    expect(published[0]!.headers[DEAD_LETTER_HEADER.attempts]).toBe("1");
  });

  it("a handled message is reported to telemetry as acked, with its delivery count", async () => {
    const { telemetry, of } = recorder();
    const { messenger } = setup({ telemetry });
    const d = destination<Body>("ok.acked");
    let fail = true;
    await messenger.subscribe(
      d,
      () => {
        if (fail) {
          fail = false;
          throw new Error("once");
        }
      },
      { group: "g", backoff: { initialDelayMs: 1, maxDelayMs: 1 } },
    );
    await messenger.publish(d, { n: 1 });
    await until(() => of("message.acked").length === 1);
    expect(of("message.acked")).toEqual([{ destination: d.name, group: "g", system: "memory", attempts: 2 }]);
  });

  it("dead letters and drains are reported to telemetry", async () => {
    const { telemetry, of } = recorder();
    const { messenger } = setup({ telemetry });
    const d = destination<Body>("fail.dlq");
    const sub = await messenger.subscribe(
      d,
      () => {
        throw new Error("never");
      },
      { group: "g", maxDeliveries: 2, backoff: { initialDelayMs: 1, maxDelayMs: 1 } },
    );
    await messenger.publish(d, { n: 1 });
    await until(() => of("message.dead_lettered").length === 1);
    expect(of("message.dead_lettered")[0]).toEqual({
      destination: d.name,
      group: "g",
      system: "memory",
      reason: Reason.MAX_DELIVERIES,
      attempts: 2,
    });
    await sub.drain();
    expect(of("subscription.drained")).toEqual([
      { destination: d.name, group: "g", system: "memory", finished: 0, abandoned: 0 },
    ]);
  });
});

describe("expiry", () => {
  /** On a fake clock: a messenger whose events are recorded, and the dead letters of its group `g`. */
  async function scene() {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval", "Date"] });
    const { telemetry, of } = recorder();
    const { messenger } = setup({ telemetry });
    const dead: ReceivedMessage<Body>[] = [];
    await messenger.subscribe(destination<Body>("dlq.g"), (m) => void dead.push(m), { group: "reader" });
    return { messenger, of, dead };
  }

  it("a message whose attempt fails after its expiry is dead-lettered at once, not redelivered first", async () => {
    const { messenger, of, dead } = await scene();
    const d = destination<Body>("expiry.failing");
    let attempts = 0;
    await messenger.subscribe(
      d,
      (m) => {
        attempts++;
        // runs until the expiry aborts it
        return new Promise<void>((_, reject) =>
          m.signal.addEventListener("abort", () => reject(m.signal.reason)),
        );
      },
      { group: "g", backoff: { initialDelayMs: 1000, maxDelayMs: 1000 } },
    );
    await messenger.publish(d, { n: 1 }, { ttlMs: 500 });
    await vi.advanceTimersByTimeAsync(500);
    expect(attempts).toBe(1);
    expect(dead).toHaveLength(1);
    expect(dead[0]!.headers.get(DEAD_LETTER_HEADER.reason)).toBe(Reason.MESSAGE_EXPIRED);
    expect(dead[0]!.headers.get(DEAD_LETTER_HEADER.attempts)).toBe("1");
    expect(dead[0]!.headers.get(DEAD_LETTER_HEADER.code)).toBe(String(Code.DEADLINE_EXCEEDED));
    expect(of("message.redelivered")).toEqual([]);
    expect(of("message.expired")).toEqual([
      { destination: d.name, group: "g", system: "memory", dropped: false },
    ]);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(attempts).toBe(1);
  });

  it("a request dead-lettered after its deliveries fails its requester with the handler's error at once", async () => {
    const { messenger, dead } = await scene();
    const d = destination<Body>("dead.request");
    let attempts = 0;
    await messenger.subscribe(
      d,
      () => {
        attempts++;
        throw new WeftError(Code.FAILED_PRECONDITION, "out of stock", { reason: "OUT_OF_STOCK" });
      },
      { group: "g", maxDeliveries: 2, backoff: { initialDelayMs: 10, maxDelayMs: 10 } },
    );
    const request = messenger.request(d, { n: 7 }, { timeoutMs: 60_000 }).catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(50);
    expect(attempts).toBe(2);
    expect(await request).toMatchObject({
      code: Code.FAILED_PRECONDITION,
      reason: "OUT_OF_STOCK",
      rawMessage: "out of stock",
    });
    // the letter is stored as a message, not sent on as a request
    expect(dead.map((m) => [m.body.n, m.replyTo])).toEqual([[7, undefined]]);
    expect(dead[0]!.headers.get(DEAD_LETTER_HEADER.reason)).toBe(Reason.MAX_DELIVERIES);
    expect(pendingRequests(messenger)).toBe(0);
  });

  it("an expired request is dropped (message.expired, dropped), not dead-lettered; an expired command still is", async () => {
    const { messenger, of, dead } = await scene();
    const d = destination<Body>("expiry.request");
    const handled: number[] = [];
    let release!: () => void;
    await messenger.subscribe(
      d,
      (m) => {
        handled.push(m.body.n);
        // the first holds the one slot until released: the others wait, and expire
        if (m.body.n === 0) return new Promise<void>((r) => (release = r));
        if (m.replyTo !== undefined) return m.reply(m.body.n);
      },
      { group: "g", maxInFlight: 1 },
    );
    await messenger.publish(d, { n: 0 });
    await vi.advanceTimersByTimeAsync(0);
    const request = messenger.request(d, { n: 1 }, { timeoutMs: 100 }).catch((e: unknown) => e);
    await messenger.publish(d, { n: 2 }, { ttlMs: 100 });
    await vi.advanceTimersByTimeAsync(100);
    expect(await request).toMatchObject({ code: Code.DEADLINE_EXCEEDED });
    release();
    await vi.advanceTimersByTimeAsync(0);
    expect(handled).toEqual([0]);
    expect(dead.map((m) => m.body.n)).toEqual([2]);
    expect(dead[0]!.headers.get(DEAD_LETTER_HEADER.reason)).toBe(Reason.MESSAGE_EXPIRED);
    const at = { destination: d.name, group: "g", system: "memory" };
    expect(of("message.expired")).toHaveLength(2);
    expect(of("message.expired")).toContainEqual({ ...at, dropped: true });
    expect(of("message.expired")).toContainEqual({ ...at, dropped: false });
    expect(of("message.dead_lettered")).toEqual([{ ...at, reason: Reason.MESSAGE_EXPIRED, attempts: 1 }]);
    // dropped means acknowledged: never delivered again
    await vi.advanceTimersByTimeAsync(60_000);
    expect(handled).toEqual([0]);
    expect(of("message.expired")).toHaveLength(2);
  });
});

describe("acknowledgement", () => {
  it("manual: nack redelivers (attempt 2), deadLetter dead-letters with the handler's reason", async () => {
    const { messenger } = setup();
    const d = destination<Body>("manual.a");
    const letters: ReceivedMessage<Body>[] = [];
    await messenger.subscribe(destination<Body>("dlq.g"), (m) => void letters.push(m), { group: "dlq" });
    const attempts: number[] = [];
    await messenger.subscribe(
      d,
      async (m) => {
        attempts.push(m.attempt);
        if (m.attempt === 1) await m.nack({ delayMs: 0 });
        else await m.deadLetter("UNPROCESSABLE");
      },
      { group: "g", ack: "manual" },
    );
    await messenger.publish(d, { n: 1 });
    await until(() => letters.length === 1);
    expect(attempts).toEqual([1, 2]);
    expect(letters[0]!.headers.get(DEAD_LETTER_HEADER.reason)).toBe("UNPROCESSABLE");
  });

  it("stream(): acked when the loop asks for the next; breaking out drains, the rest go back to the group", async () => {
    const { messenger } = setup();
    const d = destination<Body>("stream.a");
    const stream = await messenger.stream(d, { group: "g", maxInFlight: 4 });
    for (let n = 0; n < 6; n++) await messenger.publish(d, { n });
    const seen: number[] = [];
    for await (const m of stream) {
      seen.push(m.body.n);
      if (seen.length === 3) break;
    }
    expect(seen).toEqual([0, 1, 2]);
    // the unread ones were given back to the group: a new member gets them
    const rest: number[] = [];
    await messenger.subscribe(d, (m) => void rest.push(m.body.n), { group: "g" });
    await until(() => rest.length === 3);
    expect(rest.sort()).toEqual([3, 4, 5]);
  });

  it("a drain gives a handler still running at the end of the grace back to the group (memory redelivers in-process)", async () => {
    const { messenger } = setup();
    const d = destination<Body>("drain.back");
    const sub = await messenger.subscribe(
      d,
      (m) =>
        new Promise<void>((_, reject) => m.signal.addEventListener("abort", () => reject(m.signal.reason))),
      {
        group: "g",
      },
    );
    await messenger.publish(d, { n: 1 });
    await until(() => sub.inFlight === 1);
    expect(await sub.drain({ graceMs: 20 })).toEqual({ finished: 0, abandoned: 1 });
    const again: number[] = [];
    await messenger.subscribe(d, (m) => void again.push(m.attempt), { group: "g" });
    await until(() => again.length === 1);
    expect(again).toEqual([2]);
  });
});

describe("interceptors", () => {
  it("wrap publish (headers writable) and consume; a consume interceptor that skips `next` acks", async () => {
    const sides: string[] = [];
    const tag: MessageInterceptor = (next) => async (m) => {
      sides.push(`${m.side}:${m.attempt}:${m.group ?? "-"}:${m.system}`);
      if (m.side === "publish") m.headers.set("x-traced", "1");
      if (m.side === "consume" && (m.body as Body).n === 0) return; // dedup: skip
      await next(m);
    };
    const { messenger } = setup({ interceptors: [tag] });
    const d = destination<Body>("icpt.a");
    const handled: ReceivedMessage<Body>[] = [];
    const sub = await messenger.subscribe(d, (m) => void handled.push(m), { group: "g" });
    await messenger.publish(d, { n: 0 });
    await messenger.publish(d, { n: 1 });
    await until(() => handled.length === 1 && sides.length === 4);
    expect(handled[0]!.body.n).toBe(1);
    expect(handled[0]!.headers.get("x-traced")).toBe("1");
    expect(sides.sort()).toEqual([
      "consume:1:g:memory",
      "consume:1:g:memory",
      "publish:1:-:memory",
      "publish:1:-:memory",
    ]);
    // the skipped message was acked, not redelivered: nothing is outstanding
    await until(() => sub.inFlight === 0);
    expect((await sub.drain({ graceMs: 1000 })).abandoned).toBe(0);
  });
});

describe("request/reply", () => {
  it("close() rejects the requests still waiting and leaves none pending", async () => {
    const broker = memoryBroker();
    const messenger = createMessenger({ broker, logger: SILENT_LOGGER });
    cleanup.push(() => broker.close());
    const d = destination<Body>("rr.close");
    await messenger.subscribe(d, () => new Promise(() => {}), { group: "g" });
    const waiting = messenger
      .request<Body, Body>(d, { n: 1 }, { timeoutMs: 60_000 })
      .catch((e: unknown) => e);
    await until(() => pendingRequests(messenger) === 1);
    await messenger.close({ graceMs: 0 });
    const error = (await waiting) as WeftError;
    expect(error.code).toBe(Code.UNAVAILABLE);
    expect(pendingRequests(messenger)).toBe(0);
  });

  it("an inbox that failed to open is opened again by the next request", async () => {
    const broker = memoryBroker();
    cleanup.push(() => broker.close());
    let refuse = true;
    const flaky: Broker = {
      ...broker,
      name: broker.name,
      features: broker.features,
      publish: (e, o) => broker.publish(e, o),
      subscribe: (spec, sink) => broker.subscribe(spec, sink),
      openInbox: (h) =>
        refuse ? Promise.reject(new WeftError(Code.UNAVAILABLE, "reconnecting")) : broker.openInbox(h),
    };
    const messenger = createMessenger({ broker: flaky, logger: SILENT_LOGGER });
    const d = destination<Body>("rr.inbox");
    await messenger.subscribe(d, (m) => m.reply({ n: m.body.n + 1 }), { group: "g" });
    await expect(messenger.request<Body, Body>(d, { n: 1 })).rejects.toThrow("reconnecting");
    refuse = false;
    expect(await messenger.request<Body, Body>(d, { n: 1 })).toEqual({ n: 2 });
    await messenger.close({ graceMs: 0 });
  });

  it("a request or a subscription still being set up when close() runs ends closed, leaving nothing behind", async () => {
    const broker = memoryBroker();
    cleanup.push(() => broker.close());
    let open!: () => void;
    const gate = new Promise<void>((r) => {
      open = r;
    });
    const slow: Broker = {
      ...broker,
      name: broker.name,
      features: broker.features,
      publish: (e, o) => broker.publish(e, o),
      subscribe: async (spec, sink) => {
        await gate;
        return broker.subscribe(spec, sink);
      },
      openInbox: async (h) => {
        await gate;
        return broker.openInbox(h);
      },
    };
    const messenger = createMessenger({ broker: slow, logger: SILENT_LOGGER });
    const d = destination<Body>("rr.closing");
    let handled = 0;
    const subscribing = messenger.subscribe(d, () => void handled++, { group: "g" }).catch((e: unknown) => e);
    const requesting = messenger
      .request<Body, Body>(d, { n: 1 }, { timeoutMs: 60_000 })
      .catch((e: unknown) => e);
    const closing = messenger.close({ graceMs: 0 });
    open();
    await closing;
    expect(((await subscribing) as WeftError).reason).toBe(Reason.SHUTTING_DOWN);
    expect(((await requesting) as WeftError).reason).toBe(Reason.SHUTTING_DOWN);
    expect(pendingRequests(messenger)).toBe(0);
    // the subscription the broker made late was closed: nothing reaches the handler
    const other = createMessenger({ broker, logger: SILENT_LOGGER });
    await expect(other.request<Body, Body>(d, { n: 1 })).rejects.toMatchObject({
      reason: Reason.NO_RESPONDERS,
    });
    expect(handled).toBe(0);
    await other.close({ graceMs: 0 });
  });

  it("once the inbox is open, a request reaches the broker in the caller's turn, with its own correlation id and timeout", async () => {
    const broker = memoryBroker();
    cleanup.push(() => broker.close());
    const published: Envelope[] = [];
    const recording: Broker = {
      ...broker,
      name: broker.name,
      features: broker.features,
      publish: (e, o) => {
        published.push(e);
        return broker.publish(e, o);
      },
      subscribe: (spec, sink) => broker.subscribe(spec, sink),
      openInbox: (h) => broker.openInbox(h),
    };
    const messenger = createMessenger({ broker: recording, logger: SILENT_LOGGER });
    cleanup.push(() => messenger.close({ graceMs: 0 }));
    const d = destination<Body>("rr.turn");
    await messenger.subscribe(d, (m) => m.reply({ n: m.body.n + 1 }), { group: "g" });
    expect(await messenger.request<Body, Body>(d, { n: 1 })).toEqual({ n: 2 });
    const before = published.length;
    const sentAt = Date.now();
    const second = messenger.request<Body, Body>(
      d,
      { n: 2 },
      { timeoutMs: 60_000, id: "m-2", key: "k", headers: { a: "1" } },
    );
    expect(published.length).toBe(before + 1);
    const sent = published[before]!;
    expect(sent).toMatchObject({ id: "m-2", key: "k", headers: { a: "1" } });
    expect(sent.correlationId).toBeDefined();
    expect(sent.replyTo).toBeDefined();
    expect(sent.expiresAt).toBeGreaterThanOrEqual(sentAt + 60_000);
    expect(await second).toEqual({ n: 3 });
    expect(pendingRequests(messenger)).toBe(0);
  });

  it("an aborted request rejects at once", async () => {
    const { messenger } = setup();
    const d = destination<Body>("rr.abort");
    await messenger.subscribe(d, () => new Promise(() => {}), { group: "g" });
    const controller = new AbortController();
    const waiting = messenger
      .request<Body, Body>(d, { n: 1 }, { signal: controller.signal })
      .catch((e: unknown) => e);
    await until(() => pendingRequests(messenger) === 1);
    controller.abort();
    expect((await waiting) as WeftError).toBeInstanceOf(WeftError);
    expect(pendingRequests(messenger)).toBe(0);
  });

  it("bad options leave nothing pending; a request ends with the handler or call it is made in", async () => {
    const { messenger } = setup();
    const d = destination<Body>("rr.ctx");
    await messenger.subscribe(d, () => new Promise(() => {}), { group: "g" });
    await expect(
      messenger.request<Body, Body>(d, { n: 1 }, { headers: { "weft-kind": "event" } }),
    ).rejects.toBeInstanceOf(ConfigError);
    expect(pendingRequests(messenger)).toBe(0);
    const call = new AbortController();
    const md = new Metadata();
    const waiting = runWithCallContext(
      { deadline: undefined, signal: call.signal, propagate: md, path: "/x", requestHeaders: md },
      () => messenger.request<Body, Body>(d, { n: 1 }, { timeoutMs: 60_000 }),
    ).catch((e: unknown) => e);
    await until(() => pendingRequests(messenger) === 1);
    call.abort();
    expect(((await waiting) as WeftError).code).toBe(Code.CANCELLED);
    expect(pendingRequests(messenger)).toBe(0);
  });
});

describe("publish", () => {
  it("an interceptor's synchronous throw rejects the publish", async () => {
    const refuse: MessageInterceptor = () => () => {
      throw new WeftError(Code.PERMISSION_DENIED, "not here");
    };
    const { messenger } = setup({ interceptors: [refuse] });
    await expect(messenger.publish(destination<Body>("pub.refused"), { n: 1 })).rejects.toThrow(/not here/);
  });

  it("a partitioned destination: a key always goes to the same partition, no key to partition 0", async () => {
    const { broker } = setup();
    const seen: string[] = [];
    const spy = createMessenger({
      broker: {
        ...broker,
        name: broker.name,
        features: broker.features,
        subscribe: broker.subscribe.bind(broker),
        openInbox: broker.openInbox.bind(broker),
        close: broker.close.bind(broker),
        publish: (e, o) => {
          seen.push(e.destination);
          return broker.publish(e, o);
        },
      },
      logger: SILENT_LOGGER,
    });
    const d = destination<Body>("pub.parts", { partitions: 4 });
    await spy.publish(d, { n: 1 }, { key: "alpha" });
    await spy.publish(d, { n: 2 }, { key: "alpha" });
    await spy.publish(d, { n: 3 });
    expect(seen[0]).toMatch(/^pub\.parts\.p[0-3]$/);
    expect(seen[1]).toBe(seen[0]);
    expect(seen[2]).toBe("pub.parts.p0");
  });
});
