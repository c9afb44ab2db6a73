/*
 * In-flight counting for graceful shutdown, once for every call a server runs: Weft TCP calls,
 * one-way calls (which outlive their connection) and calls of the gRPC, Connect and REST front ends
 * are tracked the same way, so "how many are left" and "stop what is left" have one answer.
 */
import { NEVER, settleWithin } from "../call/signal.ts";
import type { WeftError } from "../errors/weft-error.ts";

/** A call the tracker counts. An object rather than a closure, so tracking a call allocates nothing. */
export interface TrackedCall {
  /** Shutdown gave up waiting for the call: stop it with `error` (and answer the caller if possible). */
  stop(error: WeftError): void;
  /**
   * The call's place in its tracker while it is tracked, -1 otherwise (start it at -1). Written by
   * the tracker only; a call is tracked by one tracker at a time.
   */
  trackedAt: number;
}

/** Counts the calls in flight on a server, waits for them to finish, stops what is left. */
export interface CallTracker {
  /** Calls tracked and not yet released. */
  readonly size: number;
  /** Counts `call` until `release(call)`. */
  track(call: TrackedCall): void;
  /** Stops counting `call`; a call released twice (or never tracked) is ignored. */
  release(call: TrackedCall): void;
  /**
   * Resolves `true` once no call is tracked (at once if none is), or `false` when `deadline`
   * (`Date.now()` milliseconds) comes first; the calls still tracked then are left alone.
   */
  whenIdle(deadline: number): Promise<boolean>;
  /** Stops every call still tracked with `error` and says how many it stopped. */
  stopAll(error: WeftError): number;
}

export function createCallTracker(): CallTracker {
  return new Tracker();
}

/**
 * The calls in flight in an array, each call knowing its index: a call is released by moving the last
 * one into its place. Not a `Set`: one add and one delete per call rebuild a `Set`'s table every few
 * dozen calls, and each old table links to the next (for iterators), so one old table promoted to the
 * old generation kept every later one, and the calls they held, through young-generation collections
 * until a full one. An array drops a released call's reference at once and never links to a newer one.
 */
class Tracker implements CallTracker {
  readonly #calls: TrackedCall[] = [];
  /** Resolves the pending `whenIdle` waits; `undefined` when nobody waits. */
  #idle: (() => void) | undefined;
  #idlePromise: Promise<void> | undefined;

  get size(): number {
    return this.#calls.length;
  }

  track(call: TrackedCall): void {
    if (call.trackedAt >= 0) return;
    call.trackedAt = this.#calls.length;
    this.#calls.push(call);
  }

  release(call: TrackedCall): void {
    const calls = this.#calls;
    const i = call.trackedAt;
    if (i < 0 || calls[i] !== call) return;
    call.trackedAt = -1;
    const last = calls.pop()!;
    if (last !== call) {
      calls[i] = last;
      last.trackedAt = i;
    }
    if (calls.length > 0 || this.#idle === undefined) return;
    const resolve = this.#idle;
    this.#idle = undefined;
    this.#idlePromise = undefined;
    resolve();
  }

  whenIdle(deadline: number): Promise<boolean> {
    if (this.#calls.length === 0) return Promise.resolve(true);
    this.#idlePromise ??= new Promise<void>((resolve) => {
      this.#idle = resolve;
    });
    return settleWithin(this.#idlePromise, NEVER, deadline).then(yes, no);
  }

  stopAll(error: WeftError): number {
    const left = [...this.#calls];
    for (const call of left) call.stop(error);
    return left.length;
  }
}

function yes(): boolean {
  return true;
}

function no(): boolean {
  return false;
}
