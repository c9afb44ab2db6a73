import {
  Code,
  ConfigError,
  Metadata,
  Reason,
  SILENT_LOGGER,
  type Telemetry,
  WeftError,
  type WeftEvents,
} from "@weft/core";
import { NEVER, runWithCallContext } from "@weft/core/internal";
import { brokerView, until } from "@weft/testing";
import { afterEach, describe, expect, expectTypeOf, it, vi } from "vitest";
import {
  type Accepted,
  type Broker,
  createMessenger,
  DEAD_LETTER_HEADER,
  destination,
  type Envelope,
  type Messenger,
  memoryBroker,
  OUTCOME_HEADER,
  outcomeError,
  outcomeHeaders,
  type ReceivedMessage,
  workQueue,
} from "../src/index.ts";

const broker = memoryBroker();
const messengers: Messenger[] = [];
afterEach(async () => {
  await Promise.all(messengers.splice(0).map((m) => m.close({ graceMs: 0 })));
});

function messenger(): Messenger {
  const m = createMessenger({ broker, logger: SILENT_LOGGER });
  messengers.push(m);
  return m;
}

let unique = 0;
const queue = () => destination<{ n: number }>(`work.q${++unique}`, { kind: "command" });

describe("workQueue types", () => {
  it("infers the command and outcome types through accept, submit and work", () => {
    const jobs = workQueue<{ n: number }, { total: number }>(messenger(), queue());
    expectTypeOf(jobs.accept).parameter(0).toEqualTypeOf<{ n: number }>();
    expectTypeOf(jobs.accept).returns.toEqualTypeOf<Promise<Accepted>>();
    expectTypeOf(jobs.submit).returns.toHaveProperty("outcome").toEqualTypeOf<Promise<{ total: number }>>();
    expectTypeOf(jobs.submit).returns.toHaveProperty("accepted").toEqualTypeOf<Promise<string>>();
    expectTypeOf(jobs.work)
      .parameter(0)
      .returns.toEqualTypeOf<{ total: number } | Promise<{ total: number }>>();
  });
});

describe("workQueue options", () => {
  it("refuses a bad messenger, ttlMs, handler, group or an ack option with a ConfigError naming it", async () => {
    expect(() => workQueue(null as never, queue())).toThrow(/messenger/);
    expect(() => workQueue(messenger(), queue(), { ttlMs: 0 })).toThrow(ConfigError);
    expect(() => workQueue(messenger(), queue(), { ttlMs: 0 })).toThrow(/ttlMs/);
    const jobs = workQueue(messenger(), queue());
    expect(() => jobs.work(null as never, { group: "g" })).toThrow(/handler/);
    expect(() => jobs.work(() => 1, {} as never)).toThrow(/group/);
    expect(() => jobs.work(() => 1, { group: "g", ack: "manual" } as never)).toThrow(/ack/);
  });

  it("outcomeHeaders names the destination and the correlation id; refuses a bad name or id", () => {
    expect(outcomeHeaders("shop.reserved", { correlationId: "c-1" })).toEqual({
      [OUTCOME_HEADER.to]: "shop.reserved",
      [OUTCOME_HEADER.correlationId]: "c-1",
    });
    expect(outcomeHeaders(destination("shop.reserved"))).toEqual({ [OUTCOME_HEADER.to]: "shop.reserved" });
    expect(() => outcomeHeaders("shop.*")).toThrow(ConfigError);
    expect(() => outcomeHeaders("shop.reserved", { correlationId: "" })).toThrow(/correlationId/);
  });
});

describe("accept", () => {
  it("outside a call, takes the outcome destination from its options", async () => {
    const m = messenger();
    const q = queue();
    const jobs = workQueue<{ n: number }, number>(m, q);
    await jobs.work((c) => c.body.n + 1, { group: "w" });
    const outcomes: ReceivedMessage<number>[] = [];
    await m.subscribe(destination<number>("work.outcomes1"), (o) => void outcomes.push(o), { group: "r" });
    const ack = await jobs.accept({ n: 1 }, { outcomeTo: "work.outcomes1", correlationId: "x" });
    expect(ack.correlationId).toBe("x");
    await until(() => outcomes.length === 1, "the outcome", 5_000);
    expect(outcomes[0]!.body).toBe(2);
    expect(outcomes[0]!.kind).toBe("event");
    expect(outcomes[0]!.correlationId).toBe("x");
    expect(outcomes[0]!.id).not.toBe(ack.id);
  });

  it("inside an RPC, the command keeps the trace context but not the call's deadline or cancellation", async () => {
    const m = messenger();
    const q = queue();
    const jobs = workQueue<{ n: number }, number>(m, q);
    const commands: ReceivedMessage<{ n: number }>[] = [];
    await jobs.work(
      (c) => {
        commands.push(c);
        return c.body.n;
      },
      { group: "w" },
    );
    const headers = new Metadata({
      traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      ...outcomeHeaders("work.outcomes2", { correlationId: "rpc-1" }),
    });
    const cancelled = new AbortController();
    cancelled.abort();
    const ack = await runWithCallContext(
      {
        deadline: Date.now() + 50,
        signal: cancelled.signal,
        propagate: new Metadata({ traceparent: headers.get("traceparent")! }),
        path: "/shop.v1.Shop/Reserve",
        requestHeaders: headers,
      },
      () => jobs.accept({ n: 3 }),
    );
    expect(ack.correlationId).toBe("rpc-1");
    await until(() => commands.length === 1, "the command", 5_000);
    const command = commands[0]!;
    expect(command.expiresAt).toBeUndefined();
    expect(command.kind).toBe("command");
    expect(command.correlationId).toBe("rpc-1");
    expect(command.headers.get("traceparent")).toBe(headers.get("traceparent"));
    expect(command.headers.get(OUTCOME_HEADER.to)).toBe("work.outcomes2");
  });

  it("a malformed weft-outcome-to from the caller is INVALID_ARGUMENT/NO_OUTCOME_DESTINATION; a malformed option a ConfigError", async () => {
    const jobs = workQueue<{ n: number }, number>(messenger(), queue());
    const headers = new Metadata({ [OUTCOME_HEADER.to]: "shop.>" });
    const error = await runWithCallContext(
      { deadline: undefined, signal: NEVER, propagate: new Metadata(), path: "/t", requestHeaders: headers },
      () => jobs.accept({ n: 1 }).catch((e: unknown) => e),
    );
    expect(error).toMatchObject({ code: 3, reason: "NO_OUTCOME_DESTINATION" });
    await expect(jobs.accept({ n: 1 }, { outcomeTo: "shop.*" })).rejects.toBeInstanceOf(ConfigError);
  });

  it("ttlMs: the command expires after it, not with the call", async () => {
    const m = messenger();
    const jobs = workQueue<{ n: number }, number>(m, queue(), { ttlMs: 60_000 });
    const seen: ReceivedMessage<{ n: number }>[] = [];
    await m.subscribe(jobs.queue, (c) => void seen.push(c), { group: "peek" });
    const before = Date.now();
    const spent = new Metadata();
    await runWithCallContext(
      { deadline: before + 10, signal: NEVER, propagate: spent, path: "/t", requestHeaders: spent },
      () => jobs.accept({ n: 1 }, { outcomeTo: "work.outcomes3" }),
    );
    await until(() => seen.length === 1, "the command", 5_000);
    expect(seen[0]!.expiresAt).toBeGreaterThanOrEqual(before + 60_000);
  });
});

describe("submit", () => {
  it("acknowledges once the broker has the command, before the outcome", async () => {
    const m = messenger();
    const jobs = workQueue<{ n: number }, number>(m, queue());
    let release!: () => void;
    const held = new Promise<void>((r) => {
      release = r;
    });
    await jobs.work(
      async (c) => {
        await held;
        return c.body.n * 10;
      },
      { group: "w" },
    );
    const { accepted, outcome } = jobs.submit({ n: 4 }, { timeoutMs: 5_000 });
    let done = false;
    void outcome.then(() => {
      done = true;
    });
    expect(typeof (await accepted)).toBe("string");
    expect(done).toBe(false);
    release();
    expect(await outcome).toBe(40);
  });

  it("no worker, on a backend that can tell (memory): the outcome fails fast with NO_RESPONDERS", async () => {
    const jobs = workQueue<{ n: number }, number>(messenger(), queue());
    const { accepted, outcome } = jobs.submit({ n: 1 });
    await expect(outcome).rejects.toMatchObject({ reason: "NO_RESPONDERS" });
    // memory took the publish before it knew nobody listens: the acknowledgement says "the broker has it"
    expect(typeof (await accepted)).toBe("string");
  });

  it("a publish that fails rejects the acknowledgement and the outcome alike", async () => {
    const closed = memoryBroker();
    await closed.close();
    const m = createMessenger({ broker: closed, logger: SILENT_LOGGER });
    const jobs = workQueue<{ n: number }, number>(m, queue());
    const { accepted, outcome } = jobs.submit({ n: 1 });
    const error = await outcome.catch((e: unknown) => e);
    await expect(accepted).rejects.toBe(error);
  });
});

describe("request's onSent", () => {
  it("is called once with the correlation id before the reply resolves the request; a bad one is a ConfigError", async () => {
    const m = messenger();
    const d = destination<number>(`work.rr${++unique}`);
    await m.subscribe(d, (r) => r.reply(r.body + 1), { group: "r" });
    const order: string[] = [];
    const reply = await m.request<number, number>(d, 1, {
      onSent: (id) => order.push(`sent ${typeof id}`),
    });
    order.push(`reply ${reply}`);
    expect(order).toEqual(["sent string", "reply 2"]);
    await expect(m.request(d, 1, { onSent: 1 as never })).rejects.toThrow(/onSent/);
  });
});

describe("an outcome the broker refuses", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  /**
   * On a fake clock, a worker's messenger whose broker refuses the first `times` publishes to
   * destinations starting with `prefix`; its warnings, errors and events recorded.
   */
  function refusing(prefix: string, times: number) {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval", "Date"] });
    const inner = memoryBroker();
    const refused: Envelope[] = [];
    const broker: Broker = {
      ...brokerView(inner),
      publish: (envelope, options) => {
        if (!envelope.destination.startsWith(prefix) || refused.length >= times)
          return inner.publish(envelope, options);
        refused.push(envelope);
        return Promise.reject(
          new WeftError(Code.UNAVAILABLE, "refused", { reason: Reason.BROKER_UNAVAILABLE }),
        );
      },
    };
    const logged: string[] = [];
    const logger = {
      ...SILENT_LOGGER,
      warn: (_: unknown, message?: string) => void logged.push(`warn ${message}`),
      error: (_: unknown, message?: string) => void logged.push(`error ${message}`),
    };
    const events: WeftEvents["work.outcome_unpublished"][] = [];
    const telemetry: Telemetry = {
      event: (name, attributes) => {
        if (name === "work.outcome_unpublished")
          events.push(attributes as WeftEvents["work.outcome_unpublished"]);
      },
    };
    const m = createMessenger({ broker, logger, telemetry });
    messengers.push(m);
    return { m, refused, logged, events };
  }

  /** The dead letters of the group `w`. */
  async function letters(m: Messenger) {
    const dead: ReceivedMessage<unknown>[] = [];
    await m.subscribe(destination("dlq.w"), (d) => void dead.push(d), { group: "reader" });
    return dead;
  }

  const outOfStock = () =>
    new WeftError(Code.FAILED_PRECONDITION, "out of stock", { reason: "OUT_OF_STOCK" });
  const options = { group: "w", maxDeliveries: 2, backoff: { initialDelayMs: 100, maxDelayMs: 100 } };

  it("the last attempt's error is still the one outcome: its event is published again, the work not redone", async () => {
    const { m, refused, logged, events } = refusing("work.refused1", 1);
    const dead = await letters(m);
    const jobs = workQueue<{ n: number }, number>(m, queue());
    let attempts = 0;
    await jobs.work(() => {
      attempts++;
      throw outOfStock();
    }, options);
    const outcomes: ReceivedMessage<unknown>[] = [];
    await m.subscribe(destination("work.refused1"), (o) => void outcomes.push(o), { group: "r" });
    await jobs.accept({ n: 1 }, { outcomeTo: "work.refused1", correlationId: "c-1" });
    await vi.advanceTimersByTimeAsync(1_000);
    expect(attempts).toBe(2);
    expect(outcomes).toHaveLength(1);
    expect(outcomes[0]!.correlationId).toBe("c-1");
    expect(outcomeError(outcomes[0]!)).toMatchObject({
      code: Code.FAILED_PRECONDITION,
      reason: "OUT_OF_STOCK",
    });
    // the same message both times: a broker that deduplicates by id keeps one
    expect(refused.map((e) => e.id)).toEqual([outcomes[0]!.id]);
    expect(dead).toHaveLength(1);
    expect(dead[0]!.headers.get(DEAD_LETTER_HEADER.reason)).toBe(Reason.MAX_DELIVERIES);
    expect(dead[0]!.headers.get(DEAD_LETTER_HEADER.error)).toContain("out of stock");
    expect(logged).toEqual(["warn outcome not published; trying again"]);
    expect(events).toEqual([]);
  });

  it("a value's outcome refused once is published again, the work done once", async () => {
    const { m, refused } = refusing("work.refused3", 1);
    const jobs = workQueue<{ n: number }, number>(m, queue());
    let attempts = 0;
    await jobs.work((c) => {
      attempts++;
      return c.body.n + 1;
    }, options);
    const outcomes: ReceivedMessage<number>[] = [];
    await m.subscribe(destination<number>("work.refused3"), (o) => void outcomes.push(o), { group: "r" });
    await jobs.accept({ n: 1 }, { outcomeTo: "work.refused3" });
    await vi.advanceTimersByTimeAsync(1_000);
    expect(attempts).toBe(1);
    expect(outcomes.map((o) => o.body)).toEqual([2]);
    expect(refused.map((e) => e.id)).toEqual([outcomes[0]!.id]);
  });

  it("refused every time: reported, and the command is dead-lettered with the work's error, not the refusal", async () => {
    const { m, refused, logged, events } = refusing("work.refused2", Number.POSITIVE_INFINITY);
    const dead = await letters(m);
    const jobs = workQueue<{ n: number }, number>(m, queue());
    await jobs.work(() => {
      throw outOfStock();
    }, options);
    await jobs.accept({ n: 1 }, { outcomeTo: "work.refused2" });
    await vi.advanceTimersByTimeAsync(1_000);
    expect(refused).toHaveLength(2);
    expect(new Set(refused.map((e) => e.id)).size).toBe(1);
    expect(logged).toEqual([
      "warn outcome not published; trying again",
      "error error outcome not published; the command is dead-lettered with it",
    ]);
    expect(events).toEqual([
      { destination: jobs.queue.name, group: "w", system: "memory", tries: 2, error: true },
    ]);
    expect(dead).toHaveLength(1);
    expect(dead[0]!.headers.get(DEAD_LETTER_HEADER.error)).toContain("out of stock");
    expect(dead[0]!.headers.get(DEAD_LETTER_HEADER.code)).toBe(String(Code.FAILED_PRECONDITION));
  });

  it("a submitted command's error reply refused once still reaches the requester", async () => {
    const { m, refused } = refusing("_inbox.", 1);
    const jobs = workQueue<{ n: number }, number>(m, queue());
    await jobs.work(() => {
      throw outOfStock();
    }, options);
    const { outcome } = jobs.submit({ n: 1 }, { timeoutMs: 5_000 });
    const settled = outcome.catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(refused).toHaveLength(1);
    expect(await settled).toMatchObject({ code: Code.FAILED_PRECONDITION, reason: "OUT_OF_STOCK" });
  });
});
