/*
 * What a server reports about what others did to it, rate limited: connections turned away (a peer
 * that broke the protocol, was too slow, or came beyond `maxConnections`) and one-way calls it
 * rejected before running them. A fuzzer, a flood of bad connections or a client sending one-way
 * calls to an overloaded server writes a few lines and a count, not a line (or a stack trace) each.
 */
import { armDeadline, type DeadlineTimer } from "../call/deadline.ts";
import { codeName } from "../errors/code.ts";
import type { WeftError } from "../errors/weft-error.ts";

/** At most this many warnings are passed on per interval; the rest are counted. */
export const WARNINGS_PER_INTERVAL = 10;
/** The interval of `WARNINGS_PER_INTERVAL`, and how often a count of the others is passed on. */
export const WARNING_INTERVAL_MS = 60_000;

export interface WarningSink {
  /**
   * One warning, with what `onError` is given: the error says why (its `reason`), `path` the method
   * it concerns (if any), `peer` who.
   */
  warning(error: WeftError, path: string | undefined, peer: string | undefined): void;
  /**
   * `count` warnings were left out during the last `intervalMs`; `byReason` splits the count by the
   * errors' `reason` (their code's name for those without one), in the order each was first left out.
   */
  suppressed(count: number, intervalMs: number, byReason: ReadonlyMap<string, number>): void;
}

/**
 * Passes at most `WARNINGS_PER_INTERVAL` warnings on per `WARNING_INTERVAL_MS`; at the end of an
 * interval in which it left some out, it passes on how many.
 */
export class WarningLimiter {
  readonly #sink: WarningSink;
  #windowEnd = 0;
  #passed = 0;
  /** What was left out this interval, by reason (their sum is the count). */
  #byReason = new Map<string, number>();
  #timer: DeadlineTimer | undefined;

  constructor(sink: WarningSink) {
    this.#sink = sink;
  }

  warn(error: WeftError, path: string | undefined, peer: string | undefined): void {
    if (this.#timer === undefined) {
      const now = Date.now();
      if (now >= this.#windowEnd) {
        this.#windowEnd = now + WARNING_INTERVAL_MS;
        this.#passed = 0;
      }
    }
    if (this.#passed < WARNINGS_PER_INTERVAL) {
      this.#passed++;
      this.#sink.warning(error, path, peer);
      return;
    }
    const reason = reasonOf(error);
    this.#byReason.set(reason, (this.#byReason.get(reason) ?? 0) + 1);
    this.#timer ??= armDeadline(this.#windowEnd, endInterval, this);
  }

  /** The interval in which warnings were left out has ended: say how many; a new one begins. */
  endInterval(): void {
    this.#timer = undefined;
    const byReason = this.#byReason;
    let count = 0;
    for (const n of byReason.values()) count += n;
    this.#byReason = new Map();
    this.#passed = 0;
    this.#windowEnd = Date.now() + WARNING_INTERVAL_MS;
    this.#sink.suppressed(count, WARNING_INTERVAL_MS, byReason);
  }
}

/** What a warning says it was about: the error's `reason`, or its code's name when it has none. */
export function reasonOf(error: WeftError): string {
  return error.reason !== "" ? error.reason : codeName(error.code);
}

function endInterval(limiter: WarningLimiter): void {
  limiter.endInterval();
}
