import { FixedRateSchedule } from "./fixed-rate.ts";
import { LatencyRecorder } from "./latency.ts";
import type { BenchClient, ClientResult } from "./types.ts";

export interface LoadOptions {
  concurrency: number;
  warmupMs: number;
  durationMs: number;
  /** Called at the start and the end of the measured window (the orchestrator samples server CPU then). */
  onWindow: (edge: "start" | "end") => void;
}

/**
 * Calls in flight at most in the fixed-rate loop: calls falling due beyond it are not issued and
 * are counted instead. At the rates the fixed-rate mode is meant for, a system keeping up has a few
 * dozen in flight; 10,000 means one that fell seconds behind, and bounds the client's memory then.
 */
export const RATE_MAX_IN_FLIGHT = 10_000;

/** The fixed-rate loop's timer period: it issues the calls fallen due in one batch per tick. */
const RATE_TICK_MS = 1;

/** How long the fixed-rate loop waits, after the window, for its calls in flight to settle. */
const RATE_DRAIN_MS = 5000;

const PHASE_WARMUP = 0;
const PHASE_MEASURE = 1;
const PHASE_STOP = 2;

/**
 * The warm-up and the measured window of one run, the same for every driver: `onWindow` at both
 * edges of the window, the client's CPU time and the window's length between them.
 */
class MeasuredWindow {
  phase = PHASE_WARMUP;
  /** Settles when the window is over. */
  readonly over: Promise<void>;
  #start = 0;
  #end = 0;
  #cpuStart = process.cpuUsage();
  #cpu = { user: 0, system: 0 };
  readonly #timers: NodeJS.Timeout[];

  constructor(options: Omit<LoadOptions, "concurrency">) {
    let over = (): void => {};
    this.over = new Promise<void>((resolve) => {
      over = resolve;
    });
    this.#timers = [
      setTimeout(() => {
        options.onWindow("start");
        this.phase = PHASE_MEASURE;
        this.#cpuStart = process.cpuUsage();
        this.#start = performance.now();
      }, options.warmupMs),
      setTimeout(() => {
        this.#end = performance.now();
        this.#cpu = process.cpuUsage(this.#cpuStart);
        this.phase = PHASE_STOP;
        options.onWindow("end");
        over();
      }, options.warmupMs + options.durationMs),
    ];
  }

  /** When the window started and ended (`performance.now()`), 0 until then. */
  get startedAt(): number {
    return this.#start;
  }

  get endedAt(): number {
    return this.#end;
  }

  get measuring(): boolean {
    return this.phase === PHASE_MEASURE;
  }

  /** Stops the window's timers (a driver that failed); the figures stay as they are. */
  close(): void {
    for (const timer of this.#timers) clearTimeout(timer);
    this.phase = PHASE_STOP;
  }

  /** The window's length and the client's CPU time (user + system) over it, in µs. */
  figures(): { windowUs: number; cpuUs: number } {
    return {
      windowUs: Math.round((this.#end - this.#start) * 1000),
      cpuUs: this.#cpu.user + this.#cpu.system,
    };
  }
}

/**
 * Closed-loop unary load: `concurrency` calls in flight, each completed call immediately starts the
 * next. Warm-up first; then only calls that complete inside the window are counted and timed.
 */
export async function runUnary(client: BenchClient, options: LoadOptions): Promise<ClientResult> {
  const recorder = new LatencyRecorder();
  const window = new MeasuredWindow(options);

  const lane = async (): Promise<void> => {
    while (window.phase !== PHASE_STOP) {
      const t0 = performance.now();
      await client.echo();
      if (window.measuring) recorder.record((performance.now() - t0) * 1000);
    }
  };

  const lanes: Promise<void>[] = [];
  for (let i = 0; i < options.concurrency; i++) lanes.push(lane());
  try {
    await Promise.all(lanes);
  } finally {
    window.close();
  }
  return { count: recorder.count, ...window.figures(), ...recorder.percentiles() };
}

export interface RateOptions extends Omit<LoadOptions, "concurrency"> {
  /** Calls per second offered, whatever the answers. */
  ratePerSec: number;
}

/**
 * Open-loop (fixed-rate) unary load: calls fall due at `ratePerSec` (`FixedRateSchedule`) and a
 * timer tick every `RATE_TICK_MS` issues those due, whether or not earlier ones were answered, with
 * at most `RATE_MAX_IN_FLIGHT` in flight. Same warm-up and window as the closed loop; calls that
 * complete inside the window are counted, ok or failed, and the latency of the ok ones is timed from
 * when they were due, not from when they were sent, so a client or a tick running late shows in it.
 */
export async function runUnaryAtRate(client: BenchClient, options: RateOptions): Promise<ClientResult> {
  const recorder = new LatencyRecorder();
  const window = new MeasuredWindow(options);
  const schedule = new FixedRateSchedule(options.ratePerSec, performance.now(), RATE_MAX_IN_FLIGHT);
  let inFlight = 0;
  let completed = 0;
  let errors = 0;
  let dropped = 0;
  let firstError: string | null = null;
  let drained: (() => void) | null = null;

  const settle = (dueAt: number, error: unknown): void => {
    inFlight--;
    if (window.measuring) {
      completed++;
      if (error === undefined) recorder.record((performance.now() - dueAt) * 1000);
      else {
        errors++;
        firstError ??= error instanceof Error ? error.message : String(error);
      }
    }
    if (inFlight === 0) drained?.();
  };
  const issue = (dueAt: number): void => {
    inFlight++;
    client.echo().then(
      () => settle(dueAt, undefined),
      (error: unknown) => settle(dueAt, error ?? new Error("echo rejected")),
    );
  };

  const tick = setInterval(() => {
    if (window.phase === PHASE_STOP) return;
    const due = schedule.take(performance.now(), inFlight);
    for (let i = 0; i < due.issue; i++) issue(schedule.dueAt(due.first + i));
    // a tick late into the window can drop calls that fell due before it: those are not its own
    const end = due.first + due.issue + due.dropped;
    for (let j = due.first + due.issue; window.measuring && j < end; j++) {
      if (schedule.dueAt(j) > window.startedAt) dropped++;
    }
  }, RATE_TICK_MS);
  try {
    await window.over;
  } finally {
    clearInterval(tick);
    window.close();
  }
  const inFlightAtEnd = inFlight;
  const offered = schedule.dueIn(window.startedAt, window.endedAt);
  // the calls still in flight are not counted; let them settle before the client is closed
  if (inFlight > 0) {
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      drained = resolve;
      timer = setTimeout(resolve, RATE_DRAIN_MS);
    });
    clearTimeout(timer);
  }

  return {
    count: completed,
    ...window.figures(),
    ...recorder.percentiles(),
    rate: { ratePerSec: options.ratePerSec, offered, errors, dropped, inFlightAtEnd, firstError },
  };
}

/**
 * Server-streaming load: one call at a time, each asking for `streamMessages` messages, repeated
 * until the window is over (at least one call). Warm-up uses calls a tenth of that size.
 * The figure is messages per second; latency percentiles do not apply.
 */
export async function runStream(
  client: BenchClient,
  streamMessages: number,
  options: Omit<LoadOptions, "concurrency">,
): Promise<ClientResult> {
  const warmupCount = Math.max(1, Math.floor(streamMessages / 10));
  const warmupStart = performance.now();
  do {
    await expectStream(client, warmupCount);
  } while (performance.now() - warmupStart < options.warmupMs);

  options.onWindow("start");
  const cpuStart = process.cpuUsage();
  const windowStart = performance.now();
  let count = 0;
  do {
    count += await expectStream(client, streamMessages);
  } while (performance.now() - windowStart < options.durationMs);
  const windowEnd = performance.now();
  const cpu = process.cpuUsage(cpuStart);
  options.onWindow("end");

  return {
    count,
    windowUs: Math.round((windowEnd - windowStart) * 1000),
    cpuUs: cpu.user + cpu.system,
    p50Us: null,
    p99Us: null,
    p999Us: null,
  };
}

async function expectStream(client: BenchClient, count: number): Promise<number> {
  const got = await client.stream(count);
  if (got !== count) throw new Error(`server stream delivered ${got} messages, expected ${count}`);
  return got;
}
