import { Code, Reason, type Telemetry, WeftError } from "@weft/core";
import { afterEach, describe, expect, it, vi } from "vitest";
import { fakeCall, gatedHandler, okResult } from "../test-calls.ts";
import { leakyBucket } from "./leaky-bucket.ts";
import { callerKey, RETRY_AFTER_MS, rateLimit } from "./rate-limit.ts";
import { tokenBucket } from "./token-bucket.ts";

afterEach(() => vi.useRealTimers());

describe("rateLimit", () => {
  it("refuses beyond the limit with RATE_LIMITED and retry-after-ms, without running the handler", async () => {
    const events: unknown[] = [];
    const telemetry: Telemetry = { event: (name, a) => events.push([name, a]) };
    let t = 0;
    let ran = 0;
    const h = rateLimit({ limiter: tokenBucket({ ratePerSecond: 4, capacity: 2, now: () => t }), telemetry })(
      async () => {
        ran++;
        return okResult();
      },
    );
    await h(fakeCall());
    await h(fakeCall());
    const e = await h(fakeCall()).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(WeftError);
    expect((e as WeftError).code).toBe(Code.RESOURCE_EXHAUSTED);
    expect((e as WeftError).reason).toBe(Reason.RATE_LIMITED);
    expect((e as WeftError).metadata.get(RETRY_AFTER_MS)).toBe("250");
    expect(ran).toBe(2);
    expect(events).toEqual([
      [
        "ratelimit.rejected",
        { side: "server", method: "/demo.Svc/Get", key: "/demo.Svc/Get", retryAfterMs: 250 },
      ],
    ]);
    t = 250;
    await h(fakeCall());
    expect(ran).toBe(3);
  });

  it("limits each caller separately by header (callerKey)", async () => {
    const h = rateLimit({
      limiter: tokenBucket({ ratePerSecond: 1, capacity: 1, now: () => 0 }),
      key: callerKey({ header: "x-caller-id", perMethod: true }),
    })(async () => okResult());
    await h(fakeCall(undefined, { "x-caller-id": "a" }));
    await h(fakeCall(undefined, { "x-caller-id": "b" }));
    await h(fakeCall("/demo.Svc/Other", { "x-caller-id": "a" }));
    await expect(h(fakeCall(undefined, { "x-caller-id": "a" }))).rejects.toMatchObject({
      reason: Reason.RATE_LIMITED,
    });
  });

  it("waits out a leaky bucket's delay before the call proceeds", async () => {
    vi.useFakeTimers({ now: 0 });
    const g = gatedHandler();
    const h = rateLimit({ limiter: leakyBucket({ ratePerSecond: 10, maxWaitMs: 200 }) })(g.handler);
    for (let i = 0; i < 3; i++) void h(fakeCall());
    await expect(h(fakeCall())).rejects.toMatchObject({ reason: Reason.RATE_LIMITED });
    await vi.advanceTimersByTimeAsync(0);
    expect(g.started()).toBe(1);
    await vi.advanceTimersByTimeAsync(100);
    expect(g.started()).toBe(2);
    await vi.advanceTimersByTimeAsync(100);
    expect(g.started()).toBe(3);
  });

  it("a call cancelled while it waits out a leaky bucket's delay fails at once and never runs", async () => {
    vi.useFakeTimers({ now: 0 });
    const g = gatedHandler();
    const h = rateLimit({ limiter: leakyBucket({ ratePerSecond: 10, maxWaitMs: 200 }) })(g.handler);
    void h(fakeCall()); // runs at once; the next waits 100 ms
    const controller = new AbortController();
    const waiting = h(fakeCall(undefined, undefined, controller.signal));
    await vi.advanceTimersByTimeAsync(50);
    controller.abort();
    await expect(waiting).rejects.toMatchObject({ code: Code.CANCELLED });
    await vi.advanceTimersByTimeAsync(200);
    expect(g.started()).toBe(1);
  });

  it("takes an asynchronous limiter, and rejects bad options naming them", async () => {
    const h = rateLimit({ limiter: { tryAcquire: async () => ({ ok: false, retryAfterMs: 7 }) } })(async () =>
      okResult(),
    );
    await expect(h(fakeCall())).rejects.toMatchObject({
      metadata: expect.anything(),
      reason: Reason.RATE_LIMITED,
    });
    expect(() => rateLimit({ limiter: {} as never })).toThrow(/"limiter"/);
    expect(() => rateLimit({ limiter: tokenBucket({ ratePerSecond: 1 }), key: 1 as never })).toThrow(/"key"/);
  });
});
