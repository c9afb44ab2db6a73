/*
 * The process load the shedder reads: CPU use and event-loop delay, sampled in the background.
 */
import { monitorEventLoopDelay } from "node:perf_hooks";

/** Where the shedder reads how loaded the process is. Inject one for tests. */
export interface LoadSource {
  /** CPU use of this process in ‰ of one core (0–1000 on one busy core), smoothed. */
  cpu(): number;
  /** The event loop's recent p99 delay in milliseconds. */
  loopDelayMs(): number;
  /** Stops sampling. */
  close(): void;
}

/** Options of `processLoad`. */
export interface ProcessLoadOptions {
  /** Sampling period in milliseconds. Default: 500. */
  intervalMs?: number;
  /** Weight of the previous CPU value in its moving average: `cpu = cpu × decay + sample × (1 − decay)`. Default: 0.95. */
  decay?: number;
}

/**
 * The process's own load, sampled every `intervalMs` on an unref'd timer: CPU from
 * `process.cpuUsage()` (user + system time over wall time, as an exponential moving average), and
 * the p99 of `perf_hooks.monitorEventLoopDelay` over the last period (the histogram is reset at each
 * sample). Event-loop delay is the better overload signal in Node: one busy core shows as 1000‰
 * however many the machine has.
 */
export function processLoad(options: ProcessLoadOptions = {}): LoadSource {
  const intervalMs = options.intervalMs ?? 500;
  const decay = options.decay ?? 0.95;
  const histogram = monitorEventLoopDelay({ resolution: 10 });
  histogram.enable();
  let cpu = 0;
  let loopDelay = 0;
  let lastUsage = process.cpuUsage();
  let lastAt = performance.now();
  const timer = setInterval(() => {
    const usage = process.cpuUsage();
    const at = performance.now();
    const busyUs = usage.user - lastUsage.user + usage.system - lastUsage.system;
    const sample = (busyUs / 1000 / Math.max(1, at - lastAt)) * 1000;
    cpu = cpu * decay + sample * (1 - decay);
    loopDelay = histogram.count > 0 ? histogram.percentile(99) / 1e6 : 0;
    histogram.reset();
    lastUsage = usage;
    lastAt = at;
  }, intervalMs);
  timer.unref();
  return {
    cpu: () => cpu,
    loopDelayMs: () => loopDelay,
    close() {
      clearInterval(timer);
      histogram.disable();
    },
  };
}
