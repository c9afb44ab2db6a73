import { LatencyRecorder } from "./latency.ts";
import type { BenchClient, ClientResult } from "./types.ts";

export interface LoadOptions {
  concurrency: number;
  warmupMs: number;
  durationMs: number;
  /** Called at the start and the end of the measured window (the orchestrator samples server CPU then). */
  onWindow: (edge: "start" | "end") => void;
}

const PHASE_WARMUP = 0;
const PHASE_MEASURE = 1;
const PHASE_STOP = 2;

/**
 * Closed-loop unary load: `concurrency` calls in flight, each completed call immediately starts the
 * next. Warm-up first; then only calls that complete inside the window are counted and timed.
 */
export async function runUnary(client: BenchClient, options: LoadOptions): Promise<ClientResult> {
  const recorder = new LatencyRecorder();
  let phase = PHASE_WARMUP;
  let windowStart = 0;
  let windowEnd = 0;
  let cpuStart = process.cpuUsage();
  let cpu = { user: 0, system: 0 };

  const lane = async (): Promise<void> => {
    while (phase !== PHASE_STOP) {
      const t0 = performance.now();
      await client.echo();
      if (phase === PHASE_MEASURE) recorder.record((performance.now() - t0) * 1000);
    }
  };

  const warmupTimer = setTimeout(() => {
    options.onWindow("start");
    phase = PHASE_MEASURE;
    cpuStart = process.cpuUsage();
    windowStart = performance.now();
  }, options.warmupMs);
  const stopTimer = setTimeout(() => {
    windowEnd = performance.now();
    cpu = process.cpuUsage(cpuStart);
    phase = PHASE_STOP;
    options.onWindow("end");
  }, options.warmupMs + options.durationMs);

  const lanes: Promise<void>[] = [];
  for (let i = 0; i < options.concurrency; i++) lanes.push(lane());
  try {
    await Promise.all(lanes);
  } finally {
    clearTimeout(warmupTimer);
    clearTimeout(stopTimer);
    phase = PHASE_STOP;
  }

  return {
    count: recorder.count,
    windowUs: Math.round((windowEnd - windowStart) * 1000),
    cpuUs: cpu.user + cpu.system,
    ...recorder.percentiles(),
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
