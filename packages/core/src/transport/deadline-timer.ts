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
