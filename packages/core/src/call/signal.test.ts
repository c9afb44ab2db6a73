import { getEventListeners } from "node:events";
import { afterEach, describe, expect, it, vi } from "vitest";
import { Code } from "../errors/code.ts";
import { WeftError } from "../errors/weft-error.ts";
import { abortError, NEVER, pause, settleWithin, unwatchAbort, watchAbort } from "./signal.ts";

describe("watchAbort", () => {
  it("tells the watcher once the signal aborts, and unwatchAbort leaves no listener behind", () => {
    const controller = new AbortController();
    const watcher = { handleEvent: vi.fn() };
    watchAbort(controller.signal, watcher);
    expect(getEventListeners(controller.signal, "abort")).toHaveLength(1);
    unwatchAbort(controller.signal, watcher);
    expect(getEventListeners(controller.signal, "abort")).toHaveLength(0);
    controller.abort();
    expect(watcher.handleEvent).not.toHaveBeenCalled();

    const again = new AbortController();
    watchAbort(again.signal, watcher);
    again.abort();
    again.abort();
    expect(watcher.handleEvent).toHaveBeenCalledTimes(1);
  });

  it("registers a function, never the watcher object (Node keeps object listeners alive longer)", () => {
    const controller = new AbortController();
    const watcher = { handleEvent: vi.fn() };
    watchAbort(controller.signal, watcher);
    const [listener] = getEventListeners(controller.signal, "abort");
    expect(typeof listener).toBe("function");
    expect(listener).not.toBe(watcher);
    unwatchAbort(controller.signal, watcher);
  });

  it("calls the watcher at once for a signal that already aborted, and ignores NEVER", () => {
    const watcher = { handleEvent: vi.fn() };
    watchAbort(AbortSignal.abort(), watcher);
    expect(watcher.handleEvent).toHaveBeenCalledTimes(1);
    watchAbort(NEVER, watcher);
    unwatchAbort(NEVER, watcher);
    expect(getEventListeners(NEVER, "abort")).toHaveLength(0);
  });
});

describe("settleWithin", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("settles with the promise when it comes first, and removes its listener", async () => {
    const controller = new AbortController();
    await expect(settleWithin(Promise.resolve(7), controller.signal, undefined)).resolves.toBe(7);
    expect(getEventListeners(controller.signal, "abort")).toHaveLength(0);
  });

  it("rejects with the abort error when the signal aborts first", async () => {
    const controller = new AbortController();
    const pending = new Promise<number>(() => {});
    const raced = settleWithin(pending, controller.signal, undefined);
    const reason = new WeftError(Code.UNAVAILABLE, "shutting down");
    controller.abort(reason);
    await expect(raced).rejects.toBe(reason);
    expect(abortError(controller.signal)).toBe(reason);
  });

  it("rejects with DEADLINE_EXCEEDED at the deadline", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
    const raced = settleWithin(new Promise(() => {}), NEVER, Date.now() + 100);
    const outcome = raced.catch((e: unknown) => e);
    vi.advanceTimersByTime(100);
    expect(await outcome).toMatchObject({ code: Code.DEADLINE_EXCEEDED, reason: "DEADLINE_EXCEEDED" });
  });

  it("returns the promise itself when there is neither signal nor deadline", () => {
    const p = Promise.resolve(1);
    expect(settleWithin(p, NEVER, undefined)).toBe(p);
  });
});

describe("pause", () => {
  afterEach(() => vi.useRealTimers());

  it("resolves true when the time is up, false at an abort, leaving no listener behind", async () => {
    vi.useFakeTimers();
    const controller = new AbortController();
    const full = pause(1000, controller.signal);
    const cut = pause(5000, controller.signal);
    await vi.advanceTimersByTimeAsync(1000);
    expect(await full).toBe(true);
    controller.abort();
    expect(await cut).toBe(false);
    expect(getEventListeners(controller.signal, "abort")).toHaveLength(0);
    expect(await pause(1000, controller.signal)).toBe(false);
  });

  it("keeps the process alive while waiting only with { ref: true }", async () => {
    // real timers: Node counts a timer among its active resources only while it is ref'd
    const kept = (): number => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;
    const before = kept();
    const controller = new AbortController();
    const background = pause(60_000, controller.signal);
    expect(kept()).toBe(before);
    const foreground = pause(60_000, controller.signal, { ref: true });
    expect(kept()).toBe(before + 1);
    controller.abort();
    expect(await foreground).toBe(false);
    expect(await background).toBe(false);
    expect(kept()).toBe(before);
  });
});
