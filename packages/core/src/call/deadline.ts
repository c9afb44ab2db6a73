/*
 * Deadlines, once for every call on both sides: the timer, the arithmetic between a remaining budget
 * (what travels) and an absolute deadline (what each side keeps), and the errors a passed deadline
 * makes. Nothing else in Weft arms a deadline timer or builds a DEADLINE_EXCEEDED error.
 */
import { Code } from "../errors/code.ts";
import { Reason } from "../errors/reason.ts";
import { WeftError } from "../errors/weft-error.ts";

/** Longest delay `setTimeout` honours; larger values fire after 1 ms. */
const MAX_DELAY_MS = 0x7fffffff;

/** A deadline armed by `armDeadline`. */
export interface DeadlineTimer {
  /** Stops the timer; `onExpire` will not run. Safe to call more than once. */
  cancel(): void;
}

/**
 * Calls `onExpire` once `Date.now()` reaches `deadline`, however far away it is: a budget beyond
 * `setTimeout`'s 24.8-day limit is waited for in steps. The timer does not keep the process alive.
 *
 * `arg` is passed to `onExpire`, as `setTimeout` does, so a caller on a hot path can hand over a
 * shared function and its object instead of creating a closure per call.
 */
export function armDeadline(deadline: number, onExpire: () => void): DeadlineTimer;
export function armDeadline<T>(deadline: number, onExpire: (arg: T) => void, arg: T): DeadlineTimer;
export function armDeadline<T>(deadline: number, onExpire: (arg: T) => void, arg?: T): DeadlineTimer {
  return new Deadline(deadline, onExpire, arg as T);
}

class Deadline<T> implements DeadlineTimer {
  readonly deadline: number;
  readonly onExpire: (arg: T) => void;
  readonly arg: T;
  timer: NodeJS.Timeout | undefined;

  constructor(deadline: number, onExpire: (arg: T) => void, arg: T) {
    this.deadline = deadline;
    this.onExpire = onExpire;
    this.arg = arg;
    this.timer = undefined;
    this.arm(deadline - Date.now());
  }

  arm(left: number): void {
    this.timer = setTimeout(tick, Math.min(Math.max(0, left), MAX_DELAY_MS), this);
    this.timer.unref();
  }

  cancel(): void {
    if (this.timer === undefined) return;
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}

function tick<T>(d: Deadline<T>): void {
  const left = d.deadline - Date.now();
  if (left > 0) {
    d.arm(left);
    return;
  }
  d.timer = undefined;
  d.onExpire(d.arg);
}

/** An absolute deadline `budgetMs` from now (`Date.now()` milliseconds). */
export function deadlineAfter(budgetMs: number): number {
  return Date.now() + budgetMs;
}

/** Whole milliseconds left before `deadline` (0 or less once it has passed): the budget sent on. */
export function budgetLeft(deadline: number): number {
  return Math.floor(deadline - Date.now());
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

/**
 * The error of a call whose deadline passed on the caller's side (before or while it was waiting for
 * an answer). `deadline-ms` metadata is the absolute deadline.
 */
export function deadlineExceeded(deadline: number | undefined): WeftError {
  return new WeftError(Code.DEADLINE_EXCEEDED, "deadline exceeded", {
    reason: Reason.DEADLINE_EXCEEDED,
    metadata: deadline === undefined ? {} : { "deadline-ms": String(deadline) },
  });
}

/** The error a server answers a call with when its budget was already spent on arrival. */
export function expiredOnArrival(): WeftError {
  return new WeftError(Code.DEADLINE_EXCEEDED, "deadline already expired on arrival", {
    reason: Reason.DEADLINE_EXCEEDED,
  });
}

/** The error a server call is cancelled with when its deadline passes while the handler runs. */
export function deadlineWhileRunning(): WeftError {
  return new WeftError(Code.DEADLINE_EXCEEDED, "deadline exceeded while the handler ran", {
    reason: Reason.DEADLINE_EXCEEDED,
  });
}
