import { describe, expect, it } from "vitest";
import { ArrivalClock } from "./arrival.ts";

/**
 * An arrival clock on a fake loop: `t` is the clock, `idle` the idle time, `n` the loop's iteration;
 * `endTurn()` runs the check phase, `next(idleMs)` starts the next iteration after blocking that long.
 */
function setup(counts = true) {
  const loop = { t: 100, idle: 50, n: 7, pending: [] as Array<() => void> };
  const clock = new ArrivalClock({
    now: () => loop.t,
    idleTime: () => loop.idle,
    loopCount: () => (counts ? loop.n : undefined),
    afterTurn: (fn) => loop.pending.push(fn),
  });
  const endTurn = () => {
    for (const fn of loop.pending.splice(0)) fn();
  };
  const next = (idleMs = 0) => {
    loop.n++;
    loop.idle += idleMs;
    loop.t += idleMs + 0.05;
  };
  /** A whole turn: its first read now, `workMs` of callbacks, then the check phase. */
  const readingTurn = (workMs: number) => {
    clock.ofRead();
    loop.t += workMs;
    endTurn();
  };
  return { loop, clock, endTurn, next, readingTurn };
}

describe("ArrivalClock", () => {
  it("is the clock, scheduling nothing, while no server with an admission policy runs", () => {
    const { loop, clock } = setup();
    expect(clock.ofRead()).toBe(100);
    loop.t = 107;
    expect(clock.ofRead()).toBe(107);
    clock.noteRead();
    expect(loop.pending).toHaveLength(0);
    expect(clock.turn).toBe(0);
  });

  it("counts a read in the turn right after a reading turn, without blocking, from that turn's first read", () => {
    const { loop, clock, endTurn, next } = setup();
    clock.track(1);
    expect(clock.ofRead()).toBe(100); // the first read seen: nothing to count from
    loop.t = 105; // 5 ms of synchronous handlers
    endTurn();
    next(); // polls at once: its input was there, it came after the previous poll
    expect(clock.ofRead()).toBe(100);
    loop.t += 1; // a later read of the same turn was there as early
    expect(clock.ofRead()).toBe(100);
    expect(loop.pending).toHaveLength(1); // one immediate per turn
    expect(clock.turn).toBe(2); // and one number
    endTurn();
    next();
    expect(clock.ofRead()).toBe(105.05); // counted from the previous turn's first read
    expect(clock.turn).toBe(3);
  });

  it("counts a read after the loop waited for I/O as arriving now", () => {
    const { clock, endTurn, next, readingTurn } = setup();
    clock.track(1);
    readingTurn(3);
    next(20); // blocked 20 ms: the input came while it waited
    expect(clock.ofRead()).toBe(123.05);
    endTurn();
    next(0.005); // less than 10 µs of idle time: a poll that found its input ready
    expect(clock.ofRead()).toBe(123.05);
  });

  it("counts a read as arriving now when a turn it did not see came between", () => {
    const { loop, clock, next, readingTurn } = setup();
    clock.track(1);
    readingTurn(4);
    next(); // a turn reading only sockets the clock is not told of (another client's responses)
    next();
    expect(clock.ofRead()).toBe(loop.t);
  });

  it("only counts from the previous turn where Node tells the loop's iterations", () => {
    const { loop, clock, next, readingTurn } = setup(false);
    clock.track(1);
    readingTurn(4);
    next();
    expect(clock.ofRead()).toBe(loop.t);
  });

  it("opens a turn on a client's read, so a server read in the next turn counts from it", () => {
    const { loop, clock, endTurn, next } = setup();
    clock.track(1);
    clock.ofRead(); // a server read at 100
    loop.t = 101;
    endTurn();
    next(5);
    const clientRead = loop.t;
    clock.noteRead(); // a Weft client connection's read opens this turn
    clock.noteRead(); // once
    expect(loop.pending).toHaveLength(1);
    loop.t += 4; // the client's work
    endTurn();
    next();
    expect(clock.ofRead()).toBe(clientRead);
  });

  it("forgets the last turn once the last tracking server stops, and never counts below none", () => {
    const { loop, clock, endTurn, next, readingTurn } = setup();
    clock.track(1);
    clock.track(1);
    readingTurn(4);
    clock.track(-1);
    next();
    expect(clock.ofRead()).toBe(100); // one server still tracks
    endTurn();
    clock.track(-1);
    clock.track(-1);
    next();
    expect(clock.ofRead()).toBe(loop.t);
    clock.track(1); // a new server: nothing to count from until it has seen a turn
    next();
    expect(clock.ofRead()).toBe(loop.t);
    expect(loop.pending).toHaveLength(1);
  });
});
