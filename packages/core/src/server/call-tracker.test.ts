import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Code } from "../errors/code.ts";
import { Reason } from "../errors/reason.ts";
import { WeftError } from "../errors/weft-error.ts";
import { createCallTracker, type TrackedCall } from "./call-tracker.ts";

beforeEach(() => {
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
});
afterEach(() => {
  vi.useRealTimers();
});

function call(): TrackedCall & { stopped: WeftError[] } {
  const stopped: WeftError[] = [];
  return { stopped, stop: (e) => stopped.push(e), trackedAt: -1 };
}

const shutdownError = new WeftError(Code.UNAVAILABLE, "server shut down before the call finished", {
  reason: Reason.SHUTDOWN_TIMEOUT,
});

/** Whether `promise` settled, after the microtasks queued so far ran. */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  promise.then(
    () => {
      done = true;
    },
    () => {
      done = true;
    },
  );
  await vi.advanceTimersByTimeAsync(0);
  return done;
}

describe("call tracker", () => {
  it("keeps every other call when one is released from the middle, and takes a released call again", () => {
    const tracker = createCallTracker();
    const calls = [call(), call(), call(), call()];
    for (const c of calls) tracker.track(c);
    tracker.track(calls[1]!); // tracked already: still counted once
    tracker.release(calls[1]!);
    tracker.release(calls[0]!);
    expect(tracker.size).toBe(2);
    tracker.track(calls[1]!);
    expect(tracker.stopAll(shutdownError)).toBe(3);
    expect(calls.map((c) => c.stopped.length)).toEqual([0, 1, 1, 1]);
  });

  it("counts calls from track until release; a second release or an unknown call is ignored", () => {
    const tracker = createCallTracker();
    const a = call();
    const b = call();
    tracker.track(a);
    tracker.track(b);
    expect(tracker.size).toBe(2);
    tracker.release(a);
    tracker.release(a);
    tracker.release(call());
    expect(tracker.size).toBe(1);
    tracker.release(b);
    expect(tracker.size).toBe(0);
  });

  it("is idle at once with nothing tracked", async () => {
    await expect(createCallTracker().whenIdle(Date.now() + 1000)).resolves.toBe(true);
  });

  it("resolves every waiter once the last call is released, before the deadline", async () => {
    const tracker = createCallTracker();
    const a = call();
    const b = call();
    tracker.track(a);
    tracker.track(b);
    const first = tracker.whenIdle(Date.now() + 1000);
    const second = tracker.whenIdle(Date.now() + 500);
    tracker.release(a);
    expect(await settled(first)).toBe(false);
    tracker.release(b);
    await expect(first).resolves.toBe(true);
    await expect(second).resolves.toBe(true);
    expect(a.stopped).toEqual([]);
  });

  it("says false at the shutdown timeout, then stops what is left and counts it", async () => {
    const tracker = createCallTracker();
    const done = call();
    const stuck = call();
    const oneway = call();
    for (const c of [done, stuck, oneway]) tracker.track(c);
    const idle = tracker.whenIdle(Date.now() + 10_000);
    tracker.release(done);
    await vi.advanceTimersByTimeAsync(9_999);
    expect(await settled(idle)).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await expect(idle).resolves.toBe(false);
    expect(tracker.stopAll(shutdownError)).toBe(2);
    expect(stuck.stopped).toEqual([shutdownError]);
    expect(oneway.stopped).toEqual([shutdownError]);
    expect(done.stopped).toEqual([]);
  });

  it("lets a call release itself while it is being stopped", () => {
    const tracker = createCallTracker();
    const calls: TrackedCall[] = [];
    for (let i = 0; i < 3; i++) {
      const c: TrackedCall = { stop: () => tracker.release(c), trackedAt: -1 };
      calls.push(c);
      tracker.track(c);
    }
    expect(tracker.stopAll(shutdownError)).toBe(3);
    expect(tracker.size).toBe(0);
  });

  it("waits anew after it was idle once", async () => {
    const tracker = createCallTracker();
    const a = call();
    tracker.track(a);
    const first = tracker.whenIdle(Date.now() + 100);
    tracker.release(a);
    await expect(first).resolves.toBe(true);
    const b = call();
    tracker.track(b);
    const second = tracker.whenIdle(Date.now() + 100);
    expect(await settled(second)).toBe(false);
    tracker.release(b);
    await expect(second).resolves.toBe(true);
  });
});
