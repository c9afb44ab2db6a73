import { afterEach, describe, expect, it, vi } from "vitest";
import { Code } from "../errors/code.ts";
import {
  armDeadline,
  COARSE_MS,
  coarseNow,
  type DeadlineTimer,
  deadlineExceeded,
  deadlineWhileRunning,
  expiredOnArrival,
} from "./deadline.ts";

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

describe("armDeadline's shared timer", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  const fake = (): void => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
  };

  it("waits for every pending deadline on one timer", () => {
    fake();
    const now = Date.now();
    const timers = Array.from({ length: 100 }, (_, i) => armDeadline(now + 1000 - i, () => {}));
    expect(vi.getTimerCount()).toBe(1);
    for (const timer of timers) timer.cancel();
    vi.advanceTimersByTime(1000);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("fires deadlines in deadline order whatever the order they were armed in", () => {
    fake();
    const now = Date.now();
    const fired: number[] = [];
    for (const ms of [50, 10, 40, 20, 30]) armDeadline(now + ms, (n) => fired.push(n), ms);
    vi.advanceTimersByTime(25);
    expect(fired).toEqual([10, 20]);
    vi.advanceTimersByTime(25);
    expect(fired).toEqual([10, 20, 30, 40, 50]);
  });

  it("fires each deadline at its own time, not at the earliest one's", () => {
    fake();
    const now = Date.now();
    const first = vi.fn();
    const second = vi.fn();
    armDeadline(now + 100, second);
    armDeadline(now + 10, first);
    vi.advanceTimersByTime(10);
    expect(first).toHaveBeenCalledTimes(1);
    vi.advanceTimersByTime(89);
    expect(second).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(second).toHaveBeenCalledTimes(1);
  });

  it("skips a cancelled earliest deadline and fires the next at its time", () => {
    fake();
    const now = Date.now();
    const fired: string[] = [];
    const head = armDeadline(now + 10, () => fired.push("head"));
    armDeadline(now + 30, () => fired.push("next"));
    head.cancel();
    vi.advanceTimersByTime(29);
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(fired).toEqual(["next"]);
  });

  it("keeps the order when deadlines in the middle are cancelled", () => {
    fake();
    const now = Date.now();
    const fired: number[] = [];
    const timers = Array.from({ length: 20 }, (_, i) =>
      armDeadline(now + 1 + ((i * 7) % 20), (n) => fired.push(n), i),
    );
    for (const i of [3, 8, 11, 17]) timers[i]!.cancel();
    timers[8]!.cancel(); // twice: no effect
    vi.advanceTimersByTime(25);
    const expected = Array.from({ length: 20 }, (_, i) => i)
      .filter((i) => ![3, 8, 11, 17].includes(i))
      .sort((a, b) => ((a * 7) % 20) - ((b * 7) % 20));
    expect(fired).toEqual(expected);
  });

  it("fires many equal deadlines once each, in the order they were armed", () => {
    fake();
    const at = Date.now() + 5;
    const fired: number[] = [];
    const timers = Array.from({ length: 100 }, (_, i) => armDeadline(at, (n) => fired.push(n), i));
    timers[0]!.cancel();
    timers[50]!.cancel();
    vi.advanceTimersByTime(4);
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(fired).toEqual(Array.from({ length: 100 }, (_, i) => i).filter((i) => i !== 0 && i !== 50));
    vi.advanceTimersByTime(1000);
    expect(fired).toHaveLength(98);
  });

  it("lets an onExpire cancel a deadline due in the same firing, and arm a later one", () => {
    fake();
    const now = Date.now();
    const fired: string[] = [];
    let other: DeadlineTimer | undefined;
    armDeadline(now + 10, () => {
      fired.push("a");
      other?.cancel();
      armDeadline(Date.now() + 5, () => fired.push("c"));
    });
    other = armDeadline(now + 10, () => fired.push("b"));
    vi.advanceTimersByTime(10);
    expect(fired).toEqual(["a"]);
    vi.advanceTimersByTime(5);
    expect(fired).toEqual(["a", "c"]);
  });

  it("runs a deadline armed inside an onExpire for a time already passed on a later turn, once", () => {
    fake();
    const fired: string[] = [];
    armDeadline(Date.now() + 10, () => {
      fired.push("first");
      armDeadline(Date.now() - 1, () => fired.push("armed inside"));
      expect(fired).toEqual(["first"]); // not run from inside the callback that armed it
    });
    vi.advanceTimersByTime(10);
    vi.advanceTimersByTime(1);
    expect(fired).toEqual(["first", "armed inside"]);
    vi.advanceTimersByTime(100);
    expect(fired).toEqual(["first", "armed inside"]);
  });

  it("arms an earlier deadline than the pending ones in time", () => {
    fake();
    const now = Date.now();
    const fired: number[] = [];
    armDeadline(now + 1000, (n) => fired.push(n), 1000);
    vi.advanceTimersByTime(500);
    armDeadline(Date.now() + 10, (n) => fired.push(n), 10);
    vi.advanceTimersByTime(10);
    expect(fired).toEqual([10]);
    vi.advanceTimersByTime(490);
    expect(fired).toEqual([10, 1000]);
  });

  it("goes on with the other due deadlines after an onExpire throws", () => {
    fake();
    const now = Date.now();
    const fired: string[] = [];
    armDeadline(now + 10, () => {
      throw new Error("boom");
    });
    armDeadline(now + 10, () => fired.push("after"));
    armDeadline(now + 20, () => fired.push("later"));
    expect(() => vi.advanceTimersByTime(10)).toThrow("boom");
    vi.advanceTimersByTime(10);
    expect(fired).toEqual(["after", "later"]);
  });

  it("keeps deadlines armed under real timers apart from those armed under fake ones", async () => {
    const real = vi.fn();
    const timer = armDeadline(Date.now() + 60_000, real);
    fake();
    const faked = vi.fn();
    armDeadline(Date.now() + 10, faked);
    vi.advanceTimersByTime(10);
    expect(faked).toHaveBeenCalledTimes(1);
    vi.useRealTimers();
    const soon = await new Promise<boolean>((resolve) => armDeadline(Date.now() + 5, () => resolve(true)));
    expect(soon).toBe(true);
    expect(real).not.toHaveBeenCalled();
    timer.cancel();
  });

  it("keeps the process alive only while a ref'd deadline is pending", () => {
    // real timers: Node counts a timer among its active resources only while it is ref'd
    const kept = (): number => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;
    const before = kept();
    const background = armDeadline(Date.now() + 1_000, () => {});
    expect(kept()).toBe(before);
    const later = armDeadline(Date.now() + 60_000, () => {});
    later.ref(); // behind an earlier deadline: the one shared timer is ref'd all the same
    expect(kept()).toBe(before + 1);
    const sooner = armDeadline(Date.now() + 500, () => {});
    sooner.ref();
    sooner.ref(); // twice: counted once
    expect(kept()).toBe(before + 1); // re-armed for the earlier deadline, still ref'd
    later.cancel();
    expect(kept()).toBe(before + 1);
    sooner.cancel();
    expect(kept()).toBe(before);
    later.ref(); // cancelled: no effect
    expect(kept()).toBe(before);
    background.cancel();
  });
});

describe("coarseNow", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("reads the clock once per COARSE_MS, on the first call after each interval", () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date", "performance"] });
    const first = coarseNow();
    const reads = vi.spyOn(performance, "now");
    vi.advanceTimersByTime(COARSE_MS - 1);
    expect(coarseNow()).toBe(first);
    expect(reads).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(coarseNow()).toBe(first + COARSE_MS);
    expect(coarseNow()).toBe(first + COARSE_MS);
    expect(reads).toHaveBeenCalledTimes(1);
  });

  it("is not left frozen by fake timers removed before their tick ran", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date", "performance"] });
    coarseNow();
    vi.useRealTimers();
    const before = coarseNow();
    await new Promise<void>((resolve) => armDeadline(Date.now() + 2 * COARSE_MS, resolve));
    expect(coarseNow()).toBeGreaterThan(before);
  });
});

describe("deadline errors", () => {
  it("are built without a stack, and leave stack capture as it was", () => {
    const limit = Error.stackTraceLimit;
    for (const error of [deadlineExceeded(1234), expiredOnArrival(), deadlineWhileRunning()]) {
      expect(error.code).toBe(Code.DEADLINE_EXCEEDED);
      expect(error.stack).not.toContain("\n    at ");
    }
    expect(deadlineExceeded(1234).metadata.get("deadline-ms")).toBe("1234");
    expect(Error.stackTraceLimit).toBe(limit);
    expect(new Error("other").stack).toContain("\n    at ");
  });
});
