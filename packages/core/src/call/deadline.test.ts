import { afterEach, describe, expect, it, vi } from "vitest";
import { armDeadline } from "./deadline.ts";

describe("armDeadline", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("fires at the deadline, not before", () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
    const fired = vi.fn();
    armDeadline(Date.now() + 500, fired);
    vi.advanceTimersByTime(499);
    expect(fired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(fired).toHaveBeenCalledTimes(1);
  });

  it("waits out budgets beyond setTimeout's 2^31-1 ms limit", () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
    const fired = vi.fn();
    const thirtyDays = 30 * 24 * 3600 * 1000;
    armDeadline(Date.now() + thirtyDays, fired);
    vi.advanceTimersByTime(0x7fffffff);
    expect(fired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(thirtyDays - 0x7fffffff);
    expect(fired).toHaveBeenCalledTimes(1);
  });

  it("fires at once for a deadline already past, and never after cancel", () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
    const past = vi.fn();
    armDeadline(Date.now() - 10, past);
    vi.advanceTimersByTime(0);
    expect(past).toHaveBeenCalledTimes(1);
    const cancelled = vi.fn();
    armDeadline(Date.now() + 100, cancelled).cancel();
    vi.advanceTimersByTime(1000);
    expect(cancelled).not.toHaveBeenCalled();
  });
});

describe("armDeadline with an argument", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("passes it to onExpire, also after re-arming past the timer limit", () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
    const fired = vi.fn();
    const target = { name: "call" };
    armDeadline(Date.now() + 2 ** 31 + 5, fired, target);
    vi.advanceTimersByTime(2 ** 31);
    expect(fired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(5);
    expect(fired).toHaveBeenCalledExactlyOnceWith(target);
  });

  it("cancel() is idempotent, also from inside onExpire", () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
    const timer = armDeadline(Date.now() + 10, () => timer.cancel());
    vi.advanceTimersByTime(10);
    timer.cancel();
    timer.cancel();
  });
});
