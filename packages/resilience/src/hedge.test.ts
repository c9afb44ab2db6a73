import { type CallResult, Code, ConfigError, WeftError } from "@weft/core";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ok, recorder, scripted, unavailable } from "../test/fake.ts";
import { hedge } from "./hedge.ts";

beforeEach(() => {
  vi.useFakeTimers({ now: 1_000_000 });
});
afterEach(() => {
  vi.useRealTimers();
});

/** An answer after `ms`, or the call's abort error if its signal aborts first. */
function after(ms: number, signal: AbortSignal, n: number): Promise<CallResult> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => resolve(ok(n)), ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(signal.reason);
    });
  });
}

describe("hedge", () => {
  it("sends a backup after delayMs; the first answer wins and the other attempt is cancelled", async () => {
    const telemetry = recorder();
    const { client, sent } = scripted([hedge({ delayMs: 100, maxHedges: 2, telemetry })], (attempt, call) =>
      after(attempt === 1 ? 1_000 : 50, call.signal, attempt),
    );
    const reply = client.read({ n: 1 });
    await vi.advanceTimersByTimeAsync(149);
    expect(sent).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(await reply).toEqual({ n: 2 });
    expect(sent).toHaveLength(2); // answered before the second hedge was due
    expect(sent[0]!.signal.aborted).toBe(true);
    expect(sent[1]!.signal.aborted).toBe(false);
    expect(telemetry.events).toEqual([
      ["hedge.sent", { path: "/test.v1.Svc/read", hedge: 1, delayMs: 100 }],
      ["hedge.won", { path: "/test.v1.Svc/read", attempt: 1, cancelled: 1 }],
    ]);
    // past the second hedge's time: not sent, and the shared deadline timer found nothing left to wait for
    await vi.advanceTimersByTimeAsync(100);
    expect(sent).toHaveLength(2);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("sends the next hedge at once after a retryable failure, and fails with the last error when all fail", async () => {
    const times: number[] = [];
    const { client, sent } = scripted([hedge({ delayMs: 100, maxHedges: 2 })], async () => {
      times.push(Date.now());
      throw unavailable();
    });
    await expect(client.read({ n: 1 })).rejects.toMatchObject({ code: Code.UNAVAILABLE });
    expect(sent).toHaveLength(3);
    expect(new Set(times).size).toBe(1);
  });

  it("ends at once on a fatal error, cancelling the attempts in flight", async () => {
    const { client, sent } = scripted([hedge({ delayMs: 10 })], (attempt, call) => {
      if (attempt === 2) return Promise.reject(new WeftError(Code.NOT_FOUND, "no such item"));
      return after(1_000, call.signal, attempt);
    });
    const reply = client.read({ n: 1 }).catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(10);
    expect(await reply).toMatchObject({ code: Code.NOT_FOUND });
    expect(sent[0]!.signal.aborted).toBe(true);
  });

  it("does not hedge methods that are not idempotent, nor streams", async () => {
    const { client, sent } = scripted([hedge({ delayMs: 10 })], (attempt, call) =>
      after(100, call.signal, attempt),
    );
    const reply = client.write({ n: 1 });
    await vi.advanceTimersByTimeAsync(100);
    expect(await reply).toEqual({ n: 1 });
    expect(sent).toHaveLength(1);
  });

  it('"p95" hedges after the method\'s observed 95th percentile, once 20 calls were seen', async () => {
    const { client, sent } = scripted([hedge({ delayMs: "p95" })], (attempt, call) =>
      after(attempt <= 20 ? 10 + (attempt % 10) : 1_000, call.signal, attempt),
    );
    for (let i = 0; i < 20; i++) {
      const reply = client.read({ n: i });
      await vi.advanceTimersByTimeAsync(20);
      await reply;
    }
    expect(sent).toHaveLength(20);
    const start = Date.now();
    const reply = client.read({ n: 99 });
    await vi.advanceTimersByTimeAsync(19);
    expect(sent).toHaveLength(22); // the p95 of 10..19 ms is 19 ms
    expect(Date.now() - start).toBe(19);
    await vi.advanceTimersByTimeAsync(1_000);
    await reply;
  });

  it("rejects bad options with a ConfigError naming them", () => {
    expect(() => hedge({ delayMs: -1 })).toThrow(ConfigError);
    expect(() => hedge({ delayMs: "p99" as never })).toThrow(/delayMs/);
    expect(() => hedge({ delayMs: 5, maxHedges: 0 })).toThrow(/maxHedges/);
  });
});
