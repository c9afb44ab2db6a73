import { codeName, Reason, type Telemetry, WeftError } from "@weft/core";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { bulkhead } from "./bulkhead.ts";
import { fakeCall, gatedHandler } from "./test-calls.ts";

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

async function outcome(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "ok";
  } catch (e) {
    return e instanceof WeftError ? `${codeName(e.code)}/${e.reason}` : String(e);
  }
}

describe("bulkhead", () => {
  it("runs maxConcurrent, queues maxQueue, refuses the rest at once", async () => {
    const events: unknown[] = [];
    const telemetry: Telemetry = { event: (name, a) => events.push([name, a]) };
    const g = gatedHandler();
    const h = bulkhead({ maxConcurrent: 2, maxQueue: 1, queueTimeoutMs: 500, telemetry })(g.handler);
    const calls = [0, 1, 2, 3].map(() => outcome(h(fakeCall())));
    await vi.advanceTimersByTimeAsync(0);
    expect(g.started()).toBe(2);
    expect(await calls[3]).toBe("RESOURCE_EXHAUSTED/BULKHEAD_FULL");
    g.finish(0); // the queued call takes the slot
    await vi.advanceTimersByTimeAsync(0);
    expect(g.started()).toBe(3);
    g.finish(1);
    g.finish(2);
    expect(await Promise.all(calls.slice(0, 3))).toEqual(["ok", "ok", "ok"]);
    expect(events).toEqual([["bulkhead.rejected", { method: "/demo.Svc/Get", why: "full" }]]);
  });

  it("refuses a call queued longer than queueTimeoutMs, and keeps methods apart", async () => {
    const g = gatedHandler();
    const h = bulkhead({ maxConcurrent: 1, maxQueue: 5, queueTimeoutMs: 500 })(g.handler);
    void h(fakeCall());
    const queued = outcome(h(fakeCall()));
    const other = outcome(h(fakeCall("/demo.Svc/Other")));
    await vi.advanceTimersByTimeAsync(499);
    expect(g.started()).toBe(2); // the other method has its own slot
    await vi.advanceTimersByTimeAsync(1);
    expect(await queued).toBe("RESOURCE_EXHAUSTED/BULKHEAD_FULL");
    g.finish(0);
    g.finish(1);
    expect(await other).toBe("ok");
    // the slot is free again, the timed-out waiter took nothing
    const again = outcome(h(fakeCall()));
    await vi.advanceTimersByTimeAsync(0);
    g.finish(2);
    expect(await again).toBe("ok");
  });

  it("a queued call whose signal aborts leaves the queue", async () => {
    const g = gatedHandler();
    const h = bulkhead({ maxConcurrent: 1, maxQueue: 1 })(g.handler);
    void h(fakeCall());
    const ac = new AbortController();
    const cancelled = outcome(h(fakeCall(undefined, {}, ac.signal)));
    ac.abort();
    expect(await cancelled).toBe(`CANCELLED/${Reason.CANCELLED}`);
    const next = outcome(h(fakeCall())); // the queue has room again
    g.finish(0);
    await vi.advanceTimersByTimeAsync(0);
    expect(g.started()).toBe(2);
    g.finish(1);
    expect(await next).toBe("ok");
  });

  it("rejects bad options naming them", () => {
    expect(() => bulkhead({ maxConcurrent: 0 })).toThrow(/"maxConcurrent"/);
    expect(() => bulkhead({ maxConcurrent: 1, maxQueue: -1 })).toThrow(/"maxQueue"/);
    expect(() => bulkhead({ maxConcurrent: 1, queueTimeoutMs: Number.NaN })).toThrow(/"queueTimeoutMs"/);
  });
});
