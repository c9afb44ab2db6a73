/*
 * The process load the shedder reads: event-loop utilisation, measured when asked.
 */
import { type EventLoopUtilization, performance } from "node:perf_hooks";

/** Where the shedder reads how busy the process is. Inject one for tests. */
export interface LoadSource {
  /**
   * The share of recent time the event loop spent running callbacks rather than waiting for I/O,
   * 0–1 (`performance.eventLoopUtilization()`): 1 means every call queues behind others.
   */
  utilization(): number;
  /** Stops measuring (nothing to stop for `processLoad`; kept for sources that sample). */
  close(): void;
}

/** Options of `processLoad`. */
export interface ProcessLoadOptions {
  /** The utilisation returned covers at least this long, in milliseconds. Default: 100. */
  intervalMs?: number;
}

/**
 * The process's own event-loop utilisation over the last `intervalMs` or a little more. It is read
 * when asked, no timer runs: a read within `intervalMs` of the last measurement returns that
 * measurement (two clock reads), a later one measures the time since (one
 * `performance.eventLoopUtilization` call, which counts the callback running now as busy). Unlike
 * CPU use it is immediate and per process: one busy event loop shows as 1 however many cores the
 * machine has.
 */
export function processLoad(options: ProcessLoadOptions = {}): LoadSource {
  const intervalMs = options.intervalMs ?? 100;
  let last: EventLoopUtilization = performance.eventLoopUtilization();
  let lastAt = performance.now();
  let utilization = 0;
  return {
    utilization() {
      const at = performance.now();
      if (at - lastAt >= intervalMs) {
        const current = performance.eventLoopUtilization();
        utilization = performance.eventLoopUtilization(current, last).utilization;
        last = current;
        lastAt = at;
      }
      return utilization;
    },
    close() {},
  };
}
