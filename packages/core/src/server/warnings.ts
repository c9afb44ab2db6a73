/*
 * Warnings about connections (a peer that broke the protocol, was too slow, or came beyond
 * `maxConnections`), rate limited: a fuzzer or a flood of bad connections writes a few lines and a
 * count, not a line (or a stack trace) each.
 */
import { armDeadline, type DeadlineTimer } from "../call/deadline.ts";
import type { WeftError } from "../errors/weft-error.ts";

/** At most this many warnings are passed on per interval; the rest are counted. */
export const WARNINGS_PER_INTERVAL = 10;
/** The interval of `WARNINGS_PER_INTERVAL`, and how often a count of the others is passed on. */
export const WARNING_INTERVAL_MS = 60_000;

export interface WarningSink {
  /** One warning: the error says why (its `reason`), `peer` who. */
  warning(error: WeftError, peer: string | undefined): void;
  /** `count` warnings were left out during the last `intervalMs`. */
  suppressed(count: number, intervalMs: number): void;
}

/**
 * Passes at most `WARNINGS_PER_INTERVAL` warnings on per `WARNING_INTERVAL_MS`; at the end of an
 * interval in which it left some out, it passes on how many.
 */
export class WarningLimiter {
  readonly #sink: WarningSink;
  #windowEnd = 0;
  #passed = 0;
  #suppressed = 0;
  #timer: DeadlineTimer | undefined;

  constructor(sink: WarningSink) {
    this.#sink = sink;
  }

  warn(error: WeftError, peer: string | undefined): void {
    if (this.#timer === undefined) {
      const now = Date.now();
      if (now >= this.#windowEnd) {
        this.#windowEnd = now + WARNING_INTERVAL_MS;
        this.#passed = 0;
      }
    }
    if (this.#passed < WARNINGS_PER_INTERVAL) {
      this.#passed++;
      this.#sink.warning(error, peer);
      return;
    }
    this.#suppressed++;
    this.#timer ??= armDeadline(this.#windowEnd, endInterval, this);
  }

  /** The interval in which warnings were left out has ended: say how many; a new one begins. */
  endInterval(): void {
    this.#timer = undefined;
    const count = this.#suppressed;
    this.#suppressed = 0;
    this.#passed = 0;
    this.#windowEnd = Date.now() + WARNING_INTERVAL_MS;
    this.#sink.suppressed(count, WARNING_INTERVAL_MS);
  }
}

function endInterval(limiter: WarningLimiter): void {
  limiter.endInterval();
}
