import { Code, Metadata, Reason, type Telemetry } from "@weft/core";
import { describe, expect, it } from "vitest";
import type { LoadSource } from "./load.ts";
import { shedder } from "./shedder.ts";

const NONE = new Metadata();
const prio = (p: number) => new Metadata({ "weft-priority": String(p) });

/** A shedder on a fake clock and a fake event-loop utilisation (0.95: busy), default options. */
function setup(options: { targetDelayMs?: number } = {}) {
  const clock = { t: 1000, turn: 0 };
  const load = { u: 0.95, reads: 0 };
  const source: LoadSource = {
    utilization: () => {
      load.reads++;
      return load.u;
    },
    close() {},
  };
  const events: unknown[] = [];
  const telemetry: Telemetry = { event: (name, a) => events.push([name, a]) };
  const s = shedder({ ...options, load: source, now: () => clock.t, turn: () => clock.turn, telemetry });
  return { s, clock, load, events };
}

/**
 * One turn of the event loop reading one socket: calls read together at `clock.t`, each admitted
 * one running `workMs` of synchronous work before the next is asked about, and all of them
 * finishing once the read's callback is over (what Weft TCP does: a response is written after the
 * callback's microtasks): how many are admitted. The input came `waitedMs` before it was read.
 */
function turn(
  env: ReturnType<typeof setup>,
  calls: number,
  workMs: number,
  headers = NONE,
  waitedMs = 0,
): number {
  env.clock.turn++;
  return read(env, calls, workMs, headers, env.clock.t - waitedMs);
}

/** One socket's read within the current turn (see `turn`), its input counted from `arrivedAt`. */
function read(
  env: ReturnType<typeof setup>,
  calls: number,
  workMs: number,
  headers: Metadata,
  arrivedAt: number,
): number {
  let admitted = 0;
  for (let i = 0; i < calls; i++) {
    if (env.s.admit("/x", headers, arrivedAt) === undefined) {
      admitted++;
      env.clock.t += workMs;
    }
  }
  for (let i = 0; i < admitted; i++) env.s.finished(workMs);
  return admitted;
}

describe("shedder (queueing delay)", () => {
  it("while busy, admits a turn's calls until one has queued longer than the target (2 ms)", () => {
    const env = setup();
    // 1 ms of work each: calls that queued 0, 1 and 2 ms pass, the 4th (3 ms) and the rest are shed
    expect(turn(env, 10, 1)).toBe(3);
    expect(env.s.stats()).toMatchObject({ inFlight: 0, dropped: 7, queueDelayMs: 3 });
    env.clock.turn++;
    expect(env.s.admit("/x", NONE, env.clock.t)).toBeUndefined(); // runs on (asynchronous work)
    const e = env.s.admit("/x", NONE, env.clock.t - 2.5)!;
    expect(e.code).toBe(Code.RESOURCE_EXHAUSTED);
    expect(e.reason).toBe(Reason.OVERLOADED);
    expect(e.stack).not.toMatch(/\n\s+at /); // made without a stack trace: the cost of a rejection
    expect(env.events[0]).toEqual([
      "shed.dropped",
      { method: "/x", priority: 5, queueDelayMs: 3, utilization: 0.95, inFlight: 3 },
    ]);
  });

  it("holds the work per turn, hence the wait of the next read, at about the target however long the backlog", () => {
    const env = setup({ targetDelayMs: 5 });
    for (let i = 0; i < 20; i++) expect(turn(env, 400, 1)).toBe(6); // queued 0..5 ms pass
    expect(env.s.stats().dropped).toBe(20 * 394);
  });

  it("admits the first call of a turn however long it waited, when no admitted call runs", () => {
    const env = setup();
    // the input sat 1.5 ms in the socket: the first call is admitted, since dropping it would leave
    // the process idle; the second has queued 2.5 ms behind it and is shed
    expect(turn(env, 10, 1, NONE, 1.5)).toBe(1);
    // 10 ms in the socket: the first still runs, nothing after it
    expect(turn(env, 10, 1, NONE, 10)).toBe(1);
    // while an admitted call still runs (an asynchronous handler), a call that waited too long is shed
    env.clock.turn++;
    expect(env.s.admit("/x", NONE, env.clock.t - 5)).toBeUndefined();
    env.clock.turn++;
    expect(env.s.admit("/x", NONE, env.clock.t - 5)?.reason).toBe(Reason.OVERLOADED);
    expect(env.s.stats()).toMatchObject({ inFlight: 1, dropped: 19 });
  });

  it("admits one call per turn so, however many sockets the turn reads", () => {
    const env = setup();
    env.clock.turn++;
    const arrivedAt = env.clock.t - 3; // every read of the turn waited 3 ms in its socket
    // each socket's calls finish after its own read's callback, before the next socket is read:
    // nothing runs when the second socket's first call is asked about, but the turn already has one
    const perSocket = Array.from({ length: 5 }, () => read(env, 4, 1, NONE, arrivedAt));
    expect(perSocket).toEqual([1, 0, 0, 0, 0]);
    env.clock.turn++;
    expect(read(env, 4, 1, NONE, arrivedAt)).toBe(1); // the next turn runs its first
  });

  it("sheds nothing while the event loop is not busy (a burst on an idle server queues)", () => {
    const env = setup();
    env.load.u = 0.9; // at the threshold is not over it
    expect(turn(env, 50, 1)).toBe(50);
    env.load.u = 0.91;
    expect(turn(env, 50, 1)).toBe(3);
    expect(env.events).toHaveLength(47);
  });

  it("reads the utilisation only for calls that queued beyond the target", () => {
    const env = setup();
    env.load.u = 0;
    expect(turn(env, 3, 1)).toBe(3); // delays 0, 1, 2
    expect(env.load.reads).toBe(0);
  });

  it("sheds lower priorities first: priority p may queue target × (0.5 + p / 10)", () => {
    const counts = [0, 5, 9].map((p) => turn(setup({ targetDelayMs: 10 }), 100, 1, prio(p)));
    // 5 ms, 10 ms and 14 ms of queueing allowed: delays 0..5, 0..10, 0..14 admitted
    expect(counts).toEqual([6, 11, 15]);
    // a bad header counts as the default priority
    expect(turn(setup({ targetDelayMs: 10 }), 100, 1, new Metadata({ "weft-priority": "x" }))).toBe(11);
  });

  it("stops shedding as soon as calls no longer queue", () => {
    const env = setup();
    expect(turn(env, 10, 1)).toBe(3);
    expect(turn(env, 3, 1)).toBe(3); // a short turn: nothing queued beyond the target
    expect(env.s.stats().dropped).toBe(7);
  });

  it("after a drop, keeps dropping calls that queued too long for 1 s whatever the utilisation", () => {
    const env = setup();
    expect(turn(env, 10, 1)).toBe(3); // last drop at t = 1003
    env.load.u = 0.5; // shedding works: the event loop is no longer saturated
    env.load.reads = 0;
    env.clock.t = 1999;
    expect(turn(env, 10, 1)).toBe(3); // the 4th call is asked at 2002, within 1 s: dropped (hold until 3002)
    expect(env.load.reads).toBe(0);
    env.clock.t = 3002; // 1 s after the last drop: the utilisation decides again
    expect(turn(env, 10, 1)).toBe(10);
    expect(env.s.stats().dropped).toBe(14);
  });

  it("rejects bad options naming them", () => {
    const load: LoadSource = { utilization: () => 0, close() {} };
    expect(() => shedder({ load, targetDelayMs: 0 })).toThrow(/"targetDelayMs"/);
    expect(() => shedder({ load, utilizationThreshold: 1 })).toThrow(/"utilizationThreshold"/);
    expect(() => shedder({ load, defaultPriority: 10 })).toThrow(/"defaultPriority"/);
    expect(() => shedder({ load, holdMs: -1 })).toThrow(/"holdMs"/);
    expect(() => shedder({ load, now: 5 as unknown as () => number })).toThrow(/"now"/);
    expect(() => shedder({ load, turn: 5 as unknown as () => number })).toThrow(/"turn"/);
  });
});
