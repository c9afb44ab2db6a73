/*
 * When the input read now can have arrived: the server door's queueing clock.
 */
import { performance } from "node:perf_hooks";
import { setImmediate as realSetImmediate } from "node:timers";

/** What an `ArrivalClock` reads the event loop through; the process's own by default. */
export interface LoopProbe {
  /** `performance.now()`. */
  now(): number;
  /** Milliseconds the loop has spent blocked waiting for I/O (`performance.nodeTiming.idleTime`). */
  idleTime(): number;
  /**
   * The loop's iterations so far (`performance.nodeTiming.uvMetricsInfo.loopCount`, Node ≥ 22.8), or
   * `undefined` where Node does not tell.
   */
  loopCount(): number | undefined;
  /** Runs `fn` once the current turn's I/O callbacks are over (`setImmediate`). */
  afterTurn(fn: () => void): void;
}

/** Less idle time than this (ms) since the last reading turn counts as the loop not having blocked. */
const IDLE_EPSILON_MS = 0.01;

/**
 * Tells, for input read now, the earliest time it can have arrived at its socket (see
 * `arrivalOfRead`). One per process is used (`arrivalOfRead`, `noteRead`, `trackArrivals`); the
 * class is exported for its tests.
 */
export class ArrivalClock {
  readonly #probe: LoopProbe;
  /** Servers with an admission policy running; none: arrival times are a clock read. */
  #trackers = 0;
  /** This turn's arrival time, `-1` until the turn's first read. */
  #turnArrival = -1;
  /** When this turn first read. */
  #turnFirstRead = 0;
  /** When the last turn that read first read, `-1` for none yet. */
  #lastFirstRead = -1;
  /** The loop's idle time when the last turn that read ended. */
  #idleAtTurnEnd = 0;
  /** The loop's iteration when the last turn that read ended (`-2`: unknown). */
  #loopAtTurnEnd = -2;
  /** Turns that read, counted while tracking. */
  #turn = 0;
  readonly #endTurn = (): void => {
    this.#lastFirstRead = this.#turnFirstRead;
    this.#idleAtTurnEnd = this.#probe.idleTime();
    this.#loopAtTurnEnd = this.#probe.loopCount() ?? -2;
    this.#turnArrival = -1;
  };

  constructor(probe: LoopProbe) {
    this.#probe = probe;
  }

  /** See `arrivalOfRead`. */
  ofRead(): number {
    if (this.#turnArrival >= 0) return this.#turnArrival;
    const probe = this.#probe;
    const now = probe.now();
    if (this.#trackers === 0) return now;
    // the previous turn read, and the loop went on to this one without waiting for I/O
    const backToBack =
      this.#lastFirstRead >= 0 &&
      probe.loopCount() === this.#loopAtTurnEnd + 1 &&
      probe.idleTime() - this.#idleAtTurnEnd <= IDLE_EPSILON_MS;
    this.#turnArrival = backToBack ? this.#lastFirstRead : now;
    this.#turnFirstRead = now;
    this.#turn++;
    probe.afterTurn(this.#endTurn);
    return this.#turnArrival;
  }

  /** See `readTurn`. */
  get turn(): number {
    return this.#turn;
  }

  /** See `noteRead`. */
  noteRead(): void {
    if (this.#trackers > 0 && this.#turnArrival < 0) this.ofRead();
  }

  /** See `trackArrivals`. */
  track(delta: 1 | -1): void {
    this.#trackers = Math.max(0, this.#trackers + delta);
    if (this.#trackers === 0) this.#lastFirstRead = -1;
  }
}

const processClock = new ArrivalClock({
  now: () => performance.now(),
  idleTime: () => performance.nodeTiming.idleTime,
  loopCount: () => performance.nodeTiming.uvMetricsInfo?.loopCount,
  // node:timers' own, so fake timers installed on the globals cannot hold a turn open
  afterTurn: (fn) => realSetImmediate(fn),
});

/**
 * The earliest time (`performance.now()`, ms) the input this process reads now can have arrived at
 * its socket, for the admission policy at the server door: `now − arrivalOfRead()` bounds how long
 * a request has waited, in the kernel's socket buffer and then in the process.
 *
 * Input that was in a socket when the event loop last polled was read then, so what is read now
 * came after that poll. When the previous turn of the loop read input too, and the loop came to
 * this turn without blocking for I/O (its idle time, `performance.nodeTiming.idleTime`, grows only
 * while it blocks), the input was already there when this turn polled: it came at the earliest just
 * after the previous poll, and the previous turn's first read time is returned. Otherwise (the loop
 * waited, or a turn that read nothing the process counts came between) the input is taken to have
 * just arrived, and this turn's first read time is returned. A loop's turns are short while it
 * keeps up, so the first case adds little; a turn stretched by synchronous work (handlers burning
 * milliseconds) makes the requests read in the next one count as having waited that long, which
 * they may have. Where Node does not count the loop's turns (`uvMetricsInfo`, before 22.8) only
 * the second case is used.
 *
 * The value is taken at a turn's first read and kept for every read of that turn: later reads of
 * the same poll were there as early. One `setImmediate` per turn that reads closes the turn. Reads
 * count only while a server with an admission policy runs in the process (`trackArrivals`); with
 * none this is `performance.now()` and schedules nothing.
 */
export function arrivalOfRead(): number {
  return processClock.ofRead();
}

/**
 * A read of input that is not a server's (a client connection's responses): it opens a reading
 * turn too, so a server read in the next turn is counted from this one and not from an older one.
 * One comparison while no admission policy runs.
 */
export function noteRead(): void {
  processClock.noteRead();
}

/**
 * The number of the event loop's current reading turn: it changes when a turn's first read is
 * counted (`arrivalOfRead`, `noteRead`), so the calls opened in one turn see one number and the
 * next turn's a new one. Constant while no server with an admission policy runs.
 */
export function readTurn(): number {
  return processClock.turn;
}

/** A server with an admission policy starts (`1`) or stops (`-1`) needing `arrivalOfRead`. */
export function trackArrivals(delta: 1 | -1): void {
  processClock.track(delta);
}
