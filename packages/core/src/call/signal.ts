/*
 * Cancellation, once for every call on both sides: the shared never-aborting signal, the error an
 * abort becomes, abort watchers, and the one way to wait for a promise no longer
 * than a call's signal and deadline allow.
 */
import { Code } from "../errors/code.ts";
import { Reason } from "../errors/reason.ts";
import { WeftError } from "../errors/weft-error.ts";
import { armDeadline, type DeadlineTimer, deadlineExceeded } from "./deadline.ts";

/** A signal that never aborts, shared by calls made without one (skips listener bookkeeping). */
export const NEVER: AbortSignal = new AbortController().signal;

/**
 * The error a call fails with once its signal aborted: the signal's reason when it is a `WeftError`
 * (a deadline, a shutdown, an interceptor's own error), else CANCELLED with the reason as its cause.
 */
export function abortError(signal: AbortSignal): WeftError {
  const reason: unknown = signal.reason;
  if (reason instanceof WeftError) return reason;
  return new WeftError(Code.CANCELLED, "call cancelled by the caller", {
    reason: Reason.CANCELLED,
    cause: reason,
  });
}

/** A signal that aborts when either does (`a` itself when `b` is `NEVER`, and the other way round). */
export function eitherSignal(a: AbortSignal, b: AbortSignal): AbortSignal {
  if (b === NEVER) return a;
  return a === NEVER ? b : AbortSignal.any([a, b]);
}

/** Something told once a signal aborts. An object, so a call can be its own watcher. */
export interface AbortWatcher {
  handleEvent(): void;
}

/** Where `watchAbort` keeps the function it registered for a watcher, to remove it again. */
const kListener: unique symbol = Symbol("weft.abortListener");

type Watched = AbortWatcher & { [kListener]?: (() => void) | undefined };

/** Options of every abort listener (shared: no object per call). */
const ONCE = Object.freeze({ once: true });

/**
 * Calls `watcher.handleEvent()` once `signal` aborts; at once if it has already. Undo with
 * `unwatchAbort` when the call ends, so a long-lived signal never collects watchers. `NEVER` is not
 * watched at all.
 *
 * The signal gets a small function, not the watcher object itself: Node's `EventTarget` wraps an
 * object listener in an async closure that keeps it, and all it references (a call, its request
 * and response), alive through young-generation collections. Measured on the REST gateway with
 * 16 KiB bodies, that promoted every call to the old generation: 0.15 extra `mmap`/`munmap` pairs
 * and about twice the server CPU per request.
 */
export function watchAbort(signal: AbortSignal, watcher: AbortWatcher): void {
  if (signal === NEVER) return;
  if (signal.aborted) {
    watcher.handleEvent();
    return;
  }
  const listener = () => watcher.handleEvent();
  (watcher as Watched)[kListener] = listener;
  signal.addEventListener("abort", listener, ONCE);
}

export function unwatchAbort(signal: AbortSignal, watcher: AbortWatcher): void {
  const listener = (watcher as Watched)[kListener];
  if (listener === undefined) return;
  (watcher as Watched)[kListener] = undefined;
  signal.removeEventListener("abort", listener);
}

/**
 * Settles with `pending` (a connection being set up, a request being read, a handler's answer), but
 * no longer than `signal` and `deadline` allow: it then rejects with `abortError(signal)` or
 * `deadlineExceeded(deadline)`, and `pending`'s own outcome is dropped (never reported as an
 * unhandled rejection). With neither, `pending` itself is returned.
 */
export function settleWithin<T>(
  pending: Promise<T>,
  signal: AbortSignal,
  deadline: number | undefined,
): Promise<T> {
  if (deadline === undefined && signal === NEVER) return pending;
  if (signal.aborted) {
    pending.then(undefined, ignore);
    return Promise.reject(abortError(signal));
  }
  return new Promise<T>((resolve, reject) => {
    new Race(pending, signal, deadline, resolve, reject);
  });
}

/** One `settleWithin`: its own abort watcher and deadline callback argument. */
class Race<T> implements AbortWatcher {
  readonly #signal: AbortSignal;
  readonly #deadline: number | undefined;
  readonly #resolve: (value: T) => void;
  readonly #reject: (error: unknown) => void;
  #timer: DeadlineTimer | undefined;
  #settled = false;

  constructor(
    pending: Promise<T>,
    signal: AbortSignal,
    deadline: number | undefined,
    resolve: (value: T) => void,
    reject: (error: unknown) => void,
  ) {
    this.#signal = signal;
    this.#deadline = deadline;
    this.#resolve = resolve;
    this.#reject = reject;
    watchAbort(signal, this);
    if (deadline !== undefined) this.#timer = armDeadline(deadline, expireRace, this);
    pending.then(
      (value) => {
        if (this.#end()) this.#resolve(value);
      },
      (error: unknown) => {
        if (this.#end()) this.#reject(error);
      },
    );
  }

  handleEvent(): void {
    if (this.#end()) this.#reject(abortError(this.#signal));
  }

  expire(): void {
    this.#timer = undefined;
    if (this.#end()) this.#reject(deadlineExceeded(this.#deadline));
  }

  /** True the first time: the race is decided now. */
  #end(): boolean {
    if (this.#settled) return false;
    this.#settled = true;
    this.#timer?.cancel();
    unwatchAbort(this.#signal, this);
    return true;
  }
}

function expireRace<T>(race: Race<T>): void {
  race.expire();
}

function ignore(): void {}

/** Options of `pause`. */
export interface PauseOptions {
  /**
   * Keep the process alive while waiting, for a wait a caller awaits (a retry's backoff), not a
   * background loop's. Default false.
   */
  readonly ref?: boolean;
}

/**
 * Waits `ms` milliseconds unless `signal` aborts first: resolves `true` once the time is up, `false`
 * at the abort (at once when it already was). Never rejects. The one cancellable wait of Weft: of its
 * background loops (a consumer holding a message for its retry, a relay between rounds), whose timer
 * does not keep the process alive, and of a caller's backoff (`{ ref: true }`), whose timer does.
 * Costs a promise, one object that is both the abort watcher and the deadline's argument, and a
 * deadline on the shared timer.
 */
export function pause(ms: number, signal: AbortSignal, options?: PauseOptions): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    new Wait(ms, signal, options?.ref === true, resolve);
  });
}

/** One `pause`: its own abort watcher and deadline callback argument. */
class Wait implements AbortWatcher {
  readonly #signal: AbortSignal;
  readonly #resolve: (waited: boolean) => void;
  readonly #timer: DeadlineTimer;

  constructor(ms: number, signal: AbortSignal, ref: boolean, resolve: (waited: boolean) => void) {
    this.#signal = signal;
    this.#resolve = resolve;
    this.#timer = armDeadline(Date.now() + ms, endWait, this);
    if (ref) this.#timer.ref();
    watchAbort(signal, this);
  }

  /** The time is up. */
  end(): void {
    unwatchAbort(this.#signal, this);
    this.#resolve(true);
  }

  /** The signal aborted first. */
  handleEvent(): void {
    this.#timer.cancel();
    unwatchAbort(this.#signal, this);
    this.#resolve(false);
  }
}

function endWait(wait: Wait): void {
  wait.end();
}
