import { afterEach, describe, expect, it, vi } from "vitest";
import { FixedRateSchedule } from "./fixed-rate.ts";
import { runUnaryAtRate } from "./load.ts";
import type { BenchClient } from "./types.ts";

describe("FixedRateSchedule", () => {
  it("gives each tick the calls fallen due since the last one, the first at the start", () => {
    const schedule = new FixedRateSchedule(20_000, 1000, 10_000);
    expect(schedule.take(999.5, 0)).toEqual({ first: 0, issue: 0, dropped: 0 });
    expect(schedule.take(1000, 0)).toEqual({ first: 0, issue: 1, dropped: 0 });
    expect(schedule.take(1001, 1)).toEqual({ first: 1, issue: 20, dropped: 0 });
    expect(schedule.take(1002, 21)).toEqual({ first: 21, issue: 20, dropped: 0 });
    // a tick early in the next millisecond finds nothing new due yet
    expect(schedule.take(1002.04, 41)).toEqual({ first: 41, issue: 0, dropped: 0 });
    expect(schedule.take(1002.05, 41)).toEqual({ first: 41, issue: 1, dropped: 0 });
    expect(schedule.dueAt(0)).toBe(1000);
    expect(schedule.dueAt(20)).toBe(1001);
    expect(schedule.dueAt(41)).toBe(1002.05);
  });

  it("catches up after a late tick in one batch, without shifting the calls after it", () => {
    const schedule = new FixedRateSchedule(20_000, 0, 10_000);
    expect(schedule.take(1, 0).issue).toBe(21);
    // the next tick comes 10 ms late: the 200 calls due meanwhile go at once
    expect(schedule.take(11, 0)).toEqual({ first: 21, issue: 200, dropped: 0 });
    // and the one after is back on the schedule of the start
    expect(schedule.take(12, 0)).toEqual({ first: 221, issue: 20, dropped: 0 });
    expect(schedule.dueAt(221)).toBe(11.05);
  });

  it("issues the calls due by a time whatever the ticks were (no drift)", () => {
    // 3 calls per ms, ticks at irregular times: every call due by the last tick was taken once
    const schedule = new FixedRateSchedule(3000, 0, 10_000);
    let taken = 0;
    let now = 0;
    for (const step of [1, 1.3, 0.2, 4, 1, 1, 17.9, 0.6, 2, 1]) {
      now += step;
      const due = schedule.take(now, 0);
      expect(due.first).toBe(taken);
      taken += due.issue;
    }
    expect(now).toBeCloseTo(30, 9);
    expect(taken).toBe(91);
  });

  it("drops the calls due beyond the cap on calls in flight, and does not send them later", () => {
    const schedule = new FixedRateSchedule(20_000, 0, 50);
    expect(schedule.take(0, 0).issue).toBe(1);
    expect(schedule.take(5, 40)).toEqual({ first: 1, issue: 10, dropped: 90 });
    expect(schedule.take(6, 50)).toEqual({ first: 101, issue: 0, dropped: 20 });
    expect(schedule.take(7, 0)).toEqual({ first: 121, issue: 20, dropped: 0 });
  });

  it("counts the calls due in a span of time, whatever was taken", () => {
    const schedule = new FixedRateSchedule(20_000, 10, 10_000);
    expect(schedule.dueIn(11, 12)).toBe(20);
    expect(schedule.dueIn(0, 10)).toBe(1);
    expect(schedule.dueIn(0, 5)).toBe(0);
    expect(schedule.dueIn(10.01, 1010)).toBe(20_000);
  });

  it("rejects a rate or a cap that cannot be scheduled", () => {
    expect(() => new FixedRateSchedule(0, 0, 1)).toThrow(/ratePerSec/);
    expect(() => new FixedRateSchedule(10, 0, 0)).toThrow(/maxInFlight/);
  });
});

describe("runUnaryAtRate", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("offers the rate whatever the answers and times each call from when it was due", async () => {
    vi.useFakeTimers({
      toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval", "performance"],
    });
    // every answer takes 5 ms; at 400 calls/s every other call falls due half-way between two ticks
    const client: BenchClient = {
      echo: () => new Promise<void>((resolve) => setTimeout(resolve, 5)),
      stream: () => Promise.reject(new Error("no stream")),
      close: async () => {},
    };
    const edges: string[] = [];
    const running = runUnaryAtRate(client, {
      ratePerSec: 400,
      warmupMs: 100,
      durationMs: 1000,
      onWindow: (edge) => edges.push(edge),
    });
    await vi.advanceTimersByTimeAsync(1200);
    const result = await running;

    expect(edges).toEqual(["start", "end"]);
    expect(result.windowUs).toBe(1_000_000);
    expect(result.count).toBe(400);
    expect(result.rate).toEqual({
      ratePerSec: 400,
      offered: 400,
      errors: 0,
      dropped: 0,
      inFlightAtEnd: 2,
      firstError: null,
    });
    // sent on time: 5 ms; sent at the next tick, half a millisecond after it was due: 5.5 ms
    expect(result.p50Us).toBe(5000);
    expect(result.p99Us).toBe(5500);
  });

  it("counts failed calls apart and keeps issuing at the rate", async () => {
    vi.useFakeTimers({
      toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval", "performance"],
    });
    let calls = 0;
    const client: BenchClient = {
      echo: () => (++calls % 4 === 0 ? Promise.reject(new Error("refused")) : Promise.resolve()),
      stream: () => Promise.reject(new Error("no stream")),
      close: async () => {},
    };
    const running = runUnaryAtRate(client, {
      ratePerSec: 1000,
      warmupMs: 100,
      durationMs: 1000,
      onWindow: () => {},
    });
    await vi.advanceTimersByTimeAsync(1200);
    const result = await running;

    expect(result.count).toBe(1000);
    expect(result.rate?.errors).toBe(250);
    expect(result.rate?.firstError).toBe("refused");
    expect(result.p99Us).toBe(0);
  });
});
