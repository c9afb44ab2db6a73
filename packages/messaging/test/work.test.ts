import { ConfigError, Metadata, SILENT_LOGGER } from "@weft/core";
import { NEVER, runWithCallContext } from "@weft/core/internal";
import { until } from "@weft/testing";
import { afterEach, describe, expect, expectTypeOf, it } from "vitest";
import {
  type Accepted,
  createMessenger,
  destination,
  type Messenger,
  memoryBroker,
  OUTCOME_HEADER,
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
