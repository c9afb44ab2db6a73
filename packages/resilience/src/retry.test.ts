import { Code, ConfigError, type Interceptor, WeftError } from "@weft/core";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ok, recorder, scripted, unavailable } from "../test/fake.ts";
import { circuitBreaker } from "./breaker/interceptor.ts";
import { consecutiveFailures } from "./breaker/rules.ts";
import { retryBudget } from "./budget.ts";
import { RETRIED_KEY, retry } from "./retry.ts";

beforeEach(() => {
  vi.useFakeTimers({ now: 1_000_000 });
});
afterEach(() => {
  vi.useRealTimers();
});

const backoff = { initialDelayMs: 100, maxDelayMs: 1_000 };
const noJitter = () => 0.5;

describe("retry", () => {
  it("retries UNAVAILABLE with exponential backoff, marking the retried attempts", async () => {
    const telemetry = recorder();
    const times: number[] = [];
    const { client, sent } = scripted(
      [retry({ maxAttempts: 3, backoff, random: noJitter, telemetry })],
      async (attempt) => {
        times.push(Date.now());
        if (attempt < 3) throw unavailable();
        return ok(attempt);
      },
    );
    const reply = client.write({ n: 1 });
    await vi.advanceTimersByTimeAsync(1_000);
    expect(await reply).toEqual({ n: 3 });
    expect(times.map((t) => t - times[0]!)).toEqual([0, 100, 300]);
    expect(sent.map((s) => s.headers[RETRIED_KEY])).toEqual([undefined, "1", "2"]);
    expect(telemetry.events).toEqual([
      ["retry.attempt", { path: "/test.v1.Svc/write", attempt: 2, code: Code.UNAVAILABLE, delayMs: 100 }],
      ["retry.attempt", { path: "/test.v1.Svc/write", attempt: 3, code: Code.UNAVAILABLE, delayMs: 200 }],
    ]);
  });

  it("gives up after maxAttempts with the last error", async () => {
    const { client, sent } = scripted([retry({ maxAttempts: 2, backoff, random: noJitter })], async () => {
      throw unavailable();
    });
    const reply = client.write({ n: 1 }).catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(await reply).toMatchObject({ code: Code.UNAVAILABLE });
    expect(sent).toHaveLength(2);
  });

  it("does not retry codes outside `codes`, nor a downstream failure relayed by a server", async () => {
    for (const error of [
      new WeftError(Code.INVALID_ARGUMENT, "bad"),
      unavailable({ "weft-downstream": "1" }),
    ]) {
      const { client, sent } = scripted([retry({ backoff })], async () => {
        throw error;
      });
      await expect(client.write({ n: 1 })).rejects.toBe(error);
      expect(sent).toHaveLength(1);
    }
  });

  it("does not retry a breaker's CIRCUIT_OPEN: the open breaker fails the call at once, drawing no retry", async () => {
    const telemetry = recorder();
    const budget = retryBudget({ ratio: 1, minRetriesPerSecond: 0 });
    const { client, sent } = scripted(
      [
        retry({ backoff, random: noJitter, telemetry, budget }),
        circuitBreaker({ rule: consecutiveFailures({ failures: 1 }), openMs: 60_000 }),
      ],
      async () => {
        throw unavailable();
      },
    );
    // the first call's failure opens the breaker; its retry meets the open breaker and stops there
    const first = client.write({ n: 1 }).catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(await first).toMatchObject({ code: Code.UNAVAILABLE, reason: "CIRCUIT_OPEN" });
    expect(sent).toHaveLength(1);
    expect(telemetry.events.map(([name]) => name)).toEqual(["retry.attempt"]);
    // later calls: rejected by the open breaker with no wait and no retry drawn from the budget
    const settled: unknown[] = [];
    for (let i = 0; i < 10; i++) client.write({ n: i }).catch((e: unknown) => settled.push(e));
    // settled with no time passing: no backoff (100 ms) was waited
    await vi.advanceTimersByTimeAsync(0);
    expect(settled).toHaveLength(10);
    for (const e of settled) expect(e).toMatchObject({ code: Code.UNAVAILABLE, reason: "CIRCUIT_OPEN" });
    expect(sent).toHaveLength(1);
    expect(telemetry.events.map(([name]) => name)).toEqual(["retry.attempt"]);
  });

  it("retries a CIRCUIT_OPEN a server answered: that instance's breaker, not this client's", async () => {
    const { client, sent } = scripted([retry({ backoff, random: noJitter })], async (attempt) => {
      if (attempt === 1) throw new WeftError(Code.UNAVAILABLE, "breaker open", { reason: "CIRCUIT_OPEN" });
      return ok(attempt);
    });
    const reply = client.write({ n: 1 });
    await vi.advanceTimersByTimeAsync(1_000);
    expect(await reply).toEqual({ n: 2 });
    expect(sent).toHaveLength(2);
  });

  it("retries an attempt's DEADLINE_EXCEEDED only for idempotent methods, while the call's budget remains", async () => {
    const answer = async () => {
      throw new WeftError(Code.DEADLINE_EXCEEDED, "attempt too slow");
    };
    const read = scripted([retry({ backoff, random: noJitter, attemptTimeoutMs: 50 })], answer);
    const start = Date.now();
    const reply = read.client.read({ n: 1 }, { timeoutMs: 10_000 }).catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(await reply).toMatchObject({ code: Code.DEADLINE_EXCEEDED });
    expect(read.sent).toHaveLength(3);
    // each attempt had its own budget, within the call's
    expect(read.sent.map((s) => s.deadline! - start)).toEqual([50, 150, 350]);
    const write = scripted([retry({ backoff, random: noJitter })], answer);
    await expect(write.client.write({ n: 1 }, { timeoutMs: 10_000 })).rejects.toMatchObject({
      code: Code.DEADLINE_EXCEEDED,
    });
    expect(write.sent).toHaveLength(1);
  });

  it("never waits past the caller's deadline", async () => {
    const { client, sent } = scripted([retry({ maxAttempts: 5, backoff, random: noJitter })], async () => {
      throw unavailable();
    });
    // attempt 1 at 0, attempt 2 at 100; the next wait (200) would end at 300, past the 250 ms budget
    const reply = client.write({ n: 1 }, { timeoutMs: 250 }).catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(await reply).toMatchObject({ code: Code.UNAVAILABLE });
    expect(sent).toHaveLength(2);
  });

  it("honours the server's pushback: waits retry-after-ms, or stops", async () => {
    const telemetry = recorder();
    const times: number[] = [];
    const waited = scripted([retry({ backoff, telemetry })], async (attempt) => {
      times.push(Date.now());
      if (attempt === 1) throw unavailable({ "retry-after-ms": "700" });
      return ok(attempt);
    });
    const reply = waited.client.write({ n: 1 });
    await vi.advanceTimersByTimeAsync(1_000);
    expect(await reply).toEqual({ n: 2 });
    expect(times[1]! - times[0]!).toBe(700);
    for (const stop of ["stop", "-1"]) {
      const stopped = scripted([retry({ backoff, telemetry })], async () => {
        throw unavailable({ "retry-after-ms": stop });
      });
      await expect(stopped.client.write({ n: 1 })).rejects.toMatchObject({ code: Code.UNAVAILABLE });
      expect(stopped.sent).toHaveLength(1);
    }
    expect(telemetry.events.filter(([name]) => name === "retry.pushback").map(([, a]) => a)).toEqual([
      { path: "/test.v1.Svc/write", retryAfterMs: 700 },
      { path: "/test.v1.Svc/write", retryAfterMs: undefined },
      { path: "/test.v1.Svc/write", retryAfterMs: undefined },
    ]);
  });

  it("stops retrying once the budget is spent", async () => {
    const telemetry = recorder();
    const budget = retryBudget({ ratio: 0.1, minRetriesPerSecond: 0, now: () => Date.now() });
    const { client, sent } = scripted([retry({ backoff, random: noJitter, budget, telemetry })], async () => {
      throw unavailable();
    });
    const replies = Array.from({ length: 20 }, () => client.write({ n: 1 }).catch(() => undefined));
    await vi.advanceTimersByTimeAsync(5_000);
    await Promise.all(replies);
    // 20 calls allow 2 retries in all; every other failure that would have been retried is reported
    expect(sent).toHaveLength(22);
    expect(budget.retries).toBe(2);
    expect(telemetry.events.filter(([name]) => name === "retry.budget_exhausted")).toHaveLength(20);
  });

  it("stops waiting as soon as the caller cancels", async () => {
    const { client, sent } = scripted([retry({ backoff })], async () => {
      throw unavailable();
    });
    const controller = new AbortController();
    const reply = client.write({ n: 1 }, { signal: controller.signal }).catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(10);
    controller.abort();
    expect(await reply).toMatchObject({ code: Code.CANCELLED });
    expect(sent).toHaveLength(1);
    // past the backoff: no attempt was sent, and the shared deadline timer found nothing left to wait for
    await vi.advanceTimersByTimeAsync(1_000);
    expect(sent).toHaveLength(1);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("keeps the process alive during its backoff, as the call it is part of", async () => {
    vi.useRealTimers(); // Node counts a timer among its active resources only while it is ref'd
    const kept = (): number => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;
    let backingOff!: () => void;
    const inBackoff = new Promise<void>((resolve) => {
      backingOff = resolve;
    });
    const telemetry = { event: () => backingOff() }; // retry.attempt: the backoff starts right after
    const { client } = scripted(
      [retry({ backoff: { initialDelayMs: 60_000, maxDelayMs: 60_000 }, telemetry })],
      async () => {
        throw unavailable();
      },
    );
    const before = kept();
    const controller = new AbortController();
    const reply = client.write({ n: 1 }, { signal: controller.signal }).catch((e: unknown) => e);
    await inBackoff;
    expect(kept()).toBe(before + 1);
    controller.abort();
    expect(await reply).toMatchObject({ code: Code.CANCELLED });
    expect(kept()).toBe(before);
  });

  it("retries an attempt that throws at once as one that rejects, and answers a first success as it is", async () => {
    let thrown = 0;
    const throwsOnce: Interceptor = (next) => (call) => {
      if (thrown++ === 0) throw unavailable();
      return next(call);
    };
    const { client, sent } = scripted([retry({ backoff, random: noJitter }), throwsOnce], async (attempt) =>
      ok(attempt),
    );
    const reply = client.write({ n: 1 });
    await vi.advanceTimersByTimeAsync(1_000);
    expect(await reply).toEqual({ n: 1 });
    expect(sent.map((s) => s.headers[RETRIED_KEY])).toEqual(["1"]);
    // a first attempt that succeeds: its answer, unmarked
    expect(await client.write({ n: 2 })).toEqual({ n: 2 });
    expect(sent[1]!.headers[RETRIED_KEY]).toBeUndefined();
  });

  it("does not retry streaming calls", async () => {
    const { client, sent } = scripted([retry({ backoff })], async () => {
      throw unavailable();
    });
    const stream = client.watch({ n: 1 })[Symbol.asyncIterator]();
    await expect(stream.next()).rejects.toMatchObject({ code: Code.UNAVAILABLE });
    expect(sent).toHaveLength(1);
  });

  it("rejects bad options with a ConfigError naming them", () => {
    expect(() => retry({ maxAttempts: 0 })).toThrow(ConfigError);
    expect(() => retry({ backoff: { initialDelayMs: 10, maxDelayMs: 1 } })).toThrow(/backoff/);
    expect(() => retry({ attemptTimeoutMs: -1 })).toThrow(/attemptTimeoutMs/);
    expect(() => retry({ budget: {} as never })).toThrow(/budget/);
  });
});
