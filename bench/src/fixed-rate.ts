/**
 * Arrivals at a fixed rate, as an open loop needs them: call `i` is due at `start + i / rate`,
 * whatever became of the calls before it. The driver asks on every timer tick which calls are due
 * by now; the answer comes from the time elapsed since the start, never from counting ticks, so a
 * late or missed tick delays calls but never loses them or shifts the ones after (no drift), and the
 * next tick issues everything that fell due meanwhile in one batch.
 */

/** What one tick issues: calls `first` … `first + issue - 1`, then `dropped` calls it does not. */
export interface DueCalls {
  /** Index of the first call due that was not taken before. */
  first: number;
  /** Calls to issue now, from `first` on (the earliest due first). */
  issue: number;
  /**
   * Calls due but not issued because `maxInFlight` calls were in flight: they are skipped for good
   * (the schedule does not slip), and counted by the driver.
   */
  dropped: number;
}

export class FixedRateSchedule {
  readonly #startMs: number;
  readonly #ratePerSec: number;
  readonly #maxInFlight: number;
  /** Index of the next call not yet taken (issued or dropped). */
  #next = 0;

  /** `ratePerSec` calls per second from `startMs` on (the first one due at `startMs`). */
  constructor(ratePerSec: number, startMs: number, maxInFlight: number) {
    if (!(ratePerSec > 0)) throw new Error(`ratePerSec: expected a positive number, got ${ratePerSec}`);
    if (!(maxInFlight >= 1)) throw new Error(`maxInFlight: expected at least 1, got ${maxInFlight}`);
    this.#startMs = startMs;
    this.#ratePerSec = ratePerSec;
    this.#maxInFlight = maxInFlight;
  }

  /** When call `index` was due, on the clock `startMs` was read from. */
  dueAt(index: number): number {
    return this.#startMs + (index * 1000) / this.#ratePerSec;
  }

  /**
   * Takes the calls due by `nowMs` that were not taken before; as many as fit with `inFlight`
   * calls in flight are to be issued, the rest are dropped.
   */
  take(nowMs: number, inFlight: number): DueCalls {
    const first = this.#next;
    const end = this.#lastDueBy(nowMs) + 1;
    const due = Math.max(0, end - first);
    const issue = Math.min(due, Math.max(0, this.#maxInFlight - inFlight));
    this.#next = first + due;
    return { first, issue, dropped: due - issue };
  }

  /** How many calls fall due after `fromMs` and by `toMs`, taken or not. */
  dueIn(fromMs: number, toMs: number): number {
    return Math.max(0, this.#lastDueBy(toMs) - this.#lastDueBy(fromMs));
  }

  /** The index of the last call due by `nowMs`, as `dueAt` has it; -1 before the start. */
  #lastDueBy(nowMs: number): number {
    if (nowMs < this.#startMs) return -1;
    const k = Math.floor(((nowMs - this.#startMs) * this.#ratePerSec) / 1000);
    // the product can land a rounding error away from an integer: settle it on `dueAt` itself
    if (this.dueAt(k + 1) <= nowMs) return k + 1;
    return k > 0 && this.dueAt(k) > nowMs ? k - 1 : k;
  }
}
