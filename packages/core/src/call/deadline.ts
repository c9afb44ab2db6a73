/*
 * Deadlines, once for every call on both sides: the timer, the arithmetic between a remaining budget
 * (what travels) and an absolute deadline (what each side keeps), and the errors a passed deadline
 * makes. Nothing else in Weft arms a deadline timer or builds a DEADLINE_EXCEEDED error.
 */
import { Code } from "../errors/code.ts";
import { Reason } from "../errors/reason.ts";
import { errorWithoutStack, type WeftError } from "../errors/weft-error.ts";

/** Longest delay `setTimeout` honours; larger values fire after 1 ms. */
const MAX_DELAY_MS = 0x7fffffff;

/** A deadline armed by `armDeadline`. */
export interface DeadlineTimer {
  /** Stops the timer; `onExpire` will not run. Safe to call more than once. */
  cancel(): void;
  /**
   * Keeps the process alive until this deadline fires or is cancelled (as `Timeout.ref()` does), for
   * a wait someone is awaiting in the foreground. A no-op once it fired or was cancelled.
   */
  ref(): void;
}

/**
 * Calls `onExpire` once `Date.now()` reaches `deadline`, however far away it is: a budget beyond
 * `setTimeout`'s 24.8-day limit is waited for in steps. The timer does not keep the process alive,
 * unless `ref()` is called on it.
 *
 * `arg` is passed to `onExpire`, as `setTimeout` does, so a caller on a hot path can hand over a
 * shared function and its object instead of creating a closure per call.
 *
 * Every pending deadline sits in one binary heap ordered by deadline (then by arming order), under
 * one unref'd timer armed for the earliest: arming a later deadline than the earliest and
 * cancelling are O(log n) with no timer call, which is what makes a deadline on every call cheap.
 * A cancelled earliest deadline leaves the timer as it is; when it fires, it finds the next one.
 */
export function armDeadline(deadline: number, onExpire: () => void): DeadlineTimer;
export function armDeadline<T>(deadline: number, onExpire: (arg: T) => void, arg: T): DeadlineTimer;
export function armDeadline<T>(deadline: number, onExpire: (arg: T) => void, arg?: T): DeadlineTimer {
  let timers = current;
  // the global timers changed (a test installed or removed fake timers): their own heap and timer
  if (timers.setTimer !== setTimeout) current = timers = timersOfGlobals();
  const d = new Deadline(deadline, onExpire as (arg: unknown) => void, arg, timers, ++armed);
  timers.add(d);
  return d;
}

/** Deadlines armed so far: the order of deadlines that fall due at the same time. */
let armed = 0;

/** A pending deadline is at `index` in its heap; -1 once it fired or was cancelled. */
class Deadline implements DeadlineTimer {
  readonly deadline: number;
  readonly onExpire: (arg: unknown) => void;
  readonly arg: unknown;
  readonly timers: DeadlineTimers;
  readonly order: number;
  index: number;
  /** True while it keeps the process alive (`ref()` was called and it is pending). */
  held: boolean;

  constructor(
    deadline: number,
    onExpire: (arg: unknown) => void,
    arg: unknown,
    timers: DeadlineTimers,
    order: number,
  ) {
    this.deadline = deadline;
    this.onExpire = onExpire;
    this.arg = arg;
    this.timers = timers;
    this.order = order;
    this.index = -1;
    this.held = false;
  }

  cancel(): void {
    if (this.index >= 0) this.timers.remove(this);
  }

  ref(): void {
    if (this.index >= 0 && !this.held) this.timers.hold(this);
  }
}

/** True when `a` falls due before `b`. */
function before(a: Deadline, b: Deadline): boolean {
  return a.deadline < b.deadline || (a.deadline === b.deadline && a.order < b.order);
}

/** The pending deadlines of one pair of global timer functions, and the one timer they share. */
class DeadlineTimers {
  readonly setTimer: typeof setTimeout;
  readonly clearTimer: typeof clearTimeout;
  readonly #heap: Deadline[] = [];
  #timer: NodeJS.Timeout | undefined = undefined;
  /** When (`Date.now()` time) the timer fires; +∞ while none is armed. */
  #timerAt = Number.POSITIVE_INFINITY;
  /** Pending deadlines that keep the process alive: the timer is ref'd while there are any. */
  #held = 0;

  constructor(setTimer: typeof setTimeout, clearTimer: typeof clearTimeout) {
    this.setTimer = setTimer;
    this.clearTimer = clearTimer;
  }

  add(d: Deadline): void {
    const heap = this.#heap;
    d.index = heap.length;
    heap.push(d);
    this.#up(d.index);
    if (d.deadline < this.#timerAt) this.#arm();
  }

  remove(d: Deadline): void {
    const heap = this.#heap;
    const i = d.index;
    d.index = -1;
    if (d.held) {
      d.held = false;
      if (--this.#held === 0) this.#timer?.unref();
    }
    const last = heap.pop()!;
    if (last === d) return;
    this.#put(i, last);
    if (i > 0 && before(last, heap[(i - 1) >> 1]!)) this.#up(i);
    else this.#down(i);
  }

  /** `d` (pending) keeps the process alive from now on. */
  hold(d: Deadline): void {
    d.held = true;
    if (this.#held++ === 0) this.#timer?.ref();
  }

  /**
   * The timer fired: runs every deadline that is due and was armed before now, earliest first, then
   * arms the timer for the next one. A deadline armed by an `onExpire` waits for the next firing, so
   * a callback that re-arms an expired deadline cannot hold the event loop.
   */
  fire(): void {
    this.#timer = undefined;
    this.#timerAt = Number.POSITIVE_INFINITY;
    const heap = this.#heap;
    const now = Date.now();
    const last = armed;
    try {
      for (;;) {
        const head = heap[0];
        if (head === undefined || head.deadline > now || head.order > last) break;
        this.remove(head);
        head.onExpire(head.arg);
      }
    } finally {
      // also when an onExpire threw (that reaches the process as any timer callback's error would)
      if (heap.length !== 0 && this.#timer === undefined) this.#arm();
    }
  }

  /** (Re-)arms the timer for the earliest deadline. */
  #arm(): void {
    if (this.#timer !== undefined) this.clearTimer(this.#timer);
    const now = Date.now();
    const delay = Math.min(Math.max(0, this.#heap[0]!.deadline - now), MAX_DELAY_MS);
    this.#timerAt = now + delay;
    this.#timer = this.setTimer(fireTimers, delay, this);
    if (this.#held === 0) this.#timer.unref();
  }

  #up(i: number): void {
    const heap = this.#heap;
    const d = heap[i]!;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(d, heap[parent]!)) break;
      this.#put(i, heap[parent]!);
      i = parent;
    }
    this.#put(i, d);
  }

  #down(i: number): void {
    const heap = this.#heap;
    const n = heap.length;
    const d = heap[i]!;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && before(heap[child + 1]!, heap[child]!)) child++;
      if (!before(heap[child]!, d)) break;
      this.#put(i, heap[child]!);
      i = child;
    }
    this.#put(i, d);
  }

  #put(i: number, d: Deadline): void {
    this.#heap[i] = d;
    d.index = i;
  }
}

function fireTimers(timers: DeadlineTimers): void {
  timers.fire();
}

/** Each pair of timer functions seen (the real ones, fake ones a test installed) keeps its own deadlines. */
const byTimerFunction = new WeakMap<typeof setTimeout, DeadlineTimers>();
let current = timersOfGlobals();

function timersOfGlobals(): DeadlineTimers {
  let timers = byTimerFunction.get(setTimeout);
  if (timers === undefined) {
    timers = new DeadlineTimers(setTimeout, clearTimeout);
    byTimerFunction.set(setTimeout, timers);
  }
  return timers;
}

/** How old the time `coarseNow` returns may be while the event loop turns, in milliseconds. */
export const COARSE_MS = 10;

let coarse = 0;
/** The refresh of `coarse`, pending until `COARSE_MS` passed; armed under the timers in `coarseTimers`. */
let coarseTick: DeadlineTimer | undefined;
let coarseTimers: typeof setTimeout | undefined;

/**
 * `performance.now()` read at most once per `COARSE_MS` (the shared deadline timer marks each
 * interval; nothing runs while no one asks): a monotonic clock for bookkeeping that needs the time
 * only to a few milliseconds, such as the buckets of a sliding window, at no clock read per call.
 * Not for deadlines or latencies. A long synchronous stretch, in which no timer runs, sees one time.
 */
export function coarseNow(): number {
  // the global timers changed (fake ones installed or removed): a tick armed under others may never run
  if (coarseTick === undefined || coarseTimers !== setTimeout) {
    coarseTick?.cancel();
    coarse = performance.now();
    coarseTimers = setTimeout;
    coarseTick = armDeadline(Date.now() + COARSE_MS, endCoarseTick);
  }
  return coarse;
}

function endCoarseTick(): void {
  coarseTick = undefined;
}

/** An absolute deadline `budgetMs` from now (`Date.now()` milliseconds). */
export function deadlineAfter(budgetMs: number): number {
  return Date.now() + budgetMs;
}

/**
 * Whole milliseconds left before `deadline` (0 or less once it has passed): the budget sent on.
 * `now` is a `Date.now()` the caller already read, if any.
 */
export function budgetLeft(deadline: number, now: number = Date.now()): number {
  return Math.floor(deadline - now);
}

/** True when `deadline` is set and has passed: a call with a spent budget is not started. */
export function isSpent(deadline: number | undefined): boolean {
  return deadline !== undefined && deadline <= Date.now();
}

/** The earlier of two optional deadlines (`undefined` is no deadline). */
export function earlierDeadline(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return a < b ? a : b;
}

/** A DEADLINE_EXCEEDED error; without a stack, which would name only the timer (`errorWithoutStack`). */
function deadlineError(message: string, deadline: number | undefined): WeftError {
  return errorWithoutStack(Code.DEADLINE_EXCEEDED, message, {
    reason: Reason.DEADLINE_EXCEEDED,
    metadata: deadline === undefined ? {} : { "deadline-ms": String(deadline) },
  });
}

/**
 * The error of a call whose deadline passed on the caller's side (before or while it was waiting for
 * an answer). `deadline-ms` metadata is the absolute deadline.
 */
export function deadlineExceeded(deadline: number | undefined): WeftError {
  return deadlineError("deadline exceeded", deadline);
}

/** The error a server answers a call with when its budget was already spent on arrival. */
export function expiredOnArrival(): WeftError {
  return deadlineError("deadline already expired on arrival", undefined);
}

/** The error a server call is cancelled with when its deadline passes while the handler runs. */
export function deadlineWhileRunning(): WeftError {
  return deadlineError("deadline exceeded while the handler ran", undefined);
}
