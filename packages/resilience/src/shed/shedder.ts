import {
  type CallAdmission,
  Code,
  ConfigError,
  type Metadata,
  Reason,
  type Telemetry,
  WeftError,
} from "@weft/core";
import { emit, telemetryOption } from "@weft/core/internal";
import { clockOption, positiveOption } from "../limit/limiter.ts";
import { type LoadSource, processLoad } from "./load.ts";

/** The request header carrying a call's priority, an integer 0 (shed first) to 9; default 5. */
export const PRIORITY_HEADER = "weft-priority";

/** Options of `shedder`. */
export interface ShedderOptions {
  /** Overloaded above this CPU use, in ‰ of one core (EMA). Default: 800. */
  cpuThreshold?: number;
  /**
   * Overloaded above this event-loop p99 delay, in milliseconds. Default: 20 (at 100, a Node server
   * offered twice its capacity let its accepted calls' p99 reach about 200 ms before shedding).
   */
  loopDelayThresholdMs?: number;
  /** The window passes and latencies are tracked over, in milliseconds. Default: 10,000. */
  windowMs?: number;
  /** Buckets of the window. Default: 100 (of 100 ms each). */
  buckets?: number;
  /**
   * After a drop, keep shedding calls over the limit for this long even if no longer overloaded, in
   * ms; every drop restarts it. Default: 1000.
   */
  coolDownMs?: number;
  /** Priority of a call without a valid `weft-priority` header. Default: 5. */
  defaultPriority?: number;
  /** Where CPU and event-loop delay are read. Default: `processLoad()` (sampled every 500 ms). */
  load?: LoadSource;
  /** The clock, in milliseconds. Default: `performance.now`. */
  now?: () => number;
  /** Told of every dropped call (`shed.dropped`). Default: none. */
  telemetry?: Telemetry | undefined;
}

/** What the shedder knows now. */
export interface ShedStats {
  readonly inFlight: number;
  /** maxPass × minRT × buckets per second / 1000: the calls the server can have in flight. */
  readonly maxInFlight: number;
  /** Most calls completed in one bucket of the window (the current bucket excluded). */
  readonly maxPass: number;
  /** Smallest mean latency of a bucket of the window, in ms, rounded up. */
  readonly minRtMs: number;
  readonly cpu: number;
  readonly loopDelayMs: number;
  /** Calls dropped since the shedder was made. */
  readonly dropped: number;
}

/** A load shedder: a `CallAdmission` for `createServer({ admission })`. */
export interface Shedder extends CallAdmission {
  stats(): ShedStats;
  /** Stops the default load sampler (not an injected `load`). */
  close(): void;
}

/**
 * Adaptive load shedding in the style of BBR (Kratos' `bbr`): calls are dropped while the process is
 * overloaded (CPU above `cpuThreshold` or event-loop p99 delay above `loopDelayThresholdMs`) **and**
 * more calls are in flight than it has shown it can complete: maxInFlight = maxPass × minRT ×
 * bucketsPerSecond / 1000, from the window's most passes in a bucket and its smallest mean latency.
 * After a drop, calls over that limit are dropped for `coolDownMs` more (every drop restarts it),
 * to avoid flapping.
 *
 * Calls carry a priority (`weft-priority`, 0–9, default 5): a call of priority p is dropped only
 * when in flight exceeds maxInFlight × (0.5 + p / 10), so low priorities go first and 9 keeps 40%
 * headroom over 5.
 *
 * Given as `createServer({ admission: shedder() })` it runs at the server door: a dropped call is
 * answered RESOURCE_EXHAUSTED, reason `OVERLOADED`, before its body is decoded or any interceptor
 * runs.
 */
export function shedder(options: ShedderOptions = {}): Shedder {
  return new BbrShedder(options);
}

class BbrShedder implements Shedder {
  readonly #cpuThreshold: number;
  readonly #loopThreshold: number;
  readonly #bucketMs: number;
  readonly #bucketsPerSecond: number;
  readonly #coolDownMs: number;
  readonly #defaultPriority: number;
  readonly #load: LoadSource;
  readonly #ownLoad: boolean;
  readonly #now: () => number;
  readonly #telemetry: Telemetry | undefined;
  /** Per bucket: its epoch (time / bucketMs), passes, latency sum and count. */
  readonly #epoch: Float64Array;
  readonly #pass: Float64Array;
  readonly #rtSum: Float64Array;
  readonly #rtCount: Float64Array;
  #inFlight = 0;
  #dropped = 0;
  #lastDrop = Number.NEGATIVE_INFINITY;
  /** maxInFlight as computed for `#cachedEpoch`: the past buckets change only when the epoch does. */
  #cachedEpoch = Number.NaN;
  #cached: { maxPass: number; minRt: number; maxInFlight: number } = { maxPass: 1, minRt: 1, maxInFlight: 1 };

  constructor(options: ShedderOptions) {
    this.#cpuThreshold = positiveOption("cpuThreshold", options.cpuThreshold, 800);
    this.#loopThreshold = positiveOption("loopDelayThresholdMs", options.loopDelayThresholdMs, 20);
    const windowMs = positiveOption("windowMs", options.windowMs, 10_000);
    const buckets = positiveOption("buckets", options.buckets, 100);
    if (!Number.isSafeInteger(buckets)) throw new ConfigError("buckets", "an integer ≥ 1", buckets);
    this.#bucketMs = windowMs / buckets;
    this.#bucketsPerSecond = 1000 / this.#bucketMs;
    this.#coolDownMs = positiveOption("coolDownMs", options.coolDownMs, 1000, true);
    const p = options.defaultPriority ?? 5;
    if (!Number.isInteger(p) || p < 0 || p > 9) throw new ConfigError("defaultPriority", "an integer 0–9", p);
    this.#defaultPriority = p;
    this.#ownLoad = options.load === undefined;
    this.#load = options.load ?? processLoad();
    this.#now = options.now === undefined ? () => performance.now() : clockOption(options.now);
    this.#telemetry = telemetryOption(options.telemetry);
    this.#epoch = new Float64Array(buckets).fill(-1);
    this.#pass = new Float64Array(buckets);
    this.#rtSum = new Float64Array(buckets);
    this.#rtCount = new Float64Array(buckets);
  }

  admit(path: string, headers: Metadata): WeftError | undefined {
    const t = this.#now();
    const load = this.#load;
    const cpu = load.cpu();
    const loopDelay = load.loopDelayMs();
    const overloaded = cpu > this.#cpuThreshold || loopDelay > this.#loopThreshold;
    if (!overloaded && t - this.#lastDrop > this.#coolDownMs) {
      this.#inFlight++;
      return undefined;
    }
    const inFlight = this.#inFlight;
    const { maxInFlight } = this.#limits(t);
    const priority = this.#priority(headers);
    const limit = maxInFlight * (0.5 + priority / 10);
    if (inFlight <= 1 || inFlight <= limit) {
      this.#inFlight++;
      return undefined;
    }
    // every drop restarts the cool-down, so that shedding holds while calls keep exceeding the
    // limit (the loop delay falls as soon as shedding works, and would otherwise let a queue build
    // up again until the next sample)
    this.#lastDrop = t;
    this.#dropped++;
    if (this.#telemetry !== undefined) {
      emit(this.#telemetry, "shed.dropped", {
        method: path,
        priority,
        cpu,
        loopDelayMs: loopDelay,
        inFlight,
        maxInFlight,
      });
    }
    return shedError();
  }

  finished(durationMs: number): void {
    this.#inFlight--;
    const epoch = Math.floor(this.#now() / this.#bucketMs);
    const i = this.#slot(epoch);
    this.#pass[i]!++;
    this.#rtSum[i]! += durationMs;
    this.#rtCount[i]!++;
  }

  stats(): ShedStats {
    const { maxPass, minRt, maxInFlight } = this.#limits(this.#now());
    return {
      inFlight: this.#inFlight,
      maxInFlight,
      maxPass,
      minRtMs: minRt,
      cpu: this.#load.cpu(),
      loopDelayMs: this.#load.loopDelayMs(),
      dropped: this.#dropped,
    };
  }

  close(): void {
    if (this.#ownLoad) this.#load.close();
  }

  /** The bucket of `epoch`, emptied when it last held an older one. */
  #slot(epoch: number): number {
    const n = this.#epoch.length;
    const i = epoch % n;
    if (this.#epoch[i] !== epoch) {
      this.#epoch[i] = epoch;
      this.#pass[i] = 0;
      this.#rtSum[i] = 0;
      this.#rtCount[i] = 0;
    }
    return i;
  }

  /** maxPass, minRT and maxInFlight over the window's past buckets (the current one excluded). */
  #limits(t: number): { maxPass: number; minRt: number; maxInFlight: number } {
    const current = Math.floor(t / this.#bucketMs);
    if (current === this.#cachedEpoch) return this.#cached;
    const n = this.#epoch.length;
    let maxPass = 0;
    let minRt = Number.POSITIVE_INFINITY;
    for (let i = 0; i < n; i++) {
      const e = this.#epoch[i]!;
      if (e >= current || e <= current - n) continue;
      if (this.#pass[i]! > maxPass) maxPass = this.#pass[i]!;
      const count = this.#rtCount[i]!;
      if (count > 0) minRt = Math.min(minRt, this.#rtSum[i]! / count);
    }
    if (maxPass === 0) maxPass = 1;
    minRt = Number.isFinite(minRt) ? Math.max(1, Math.ceil(minRt)) : 1;
    const maxInFlight = Math.floor((maxPass * minRt * this.#bucketsPerSecond) / 1000 + 0.5);
    this.#cachedEpoch = current;
    this.#cached = { maxPass, minRt, maxInFlight };
    return this.#cached;
  }

  #priority(headers: Metadata): number {
    const v = headers.get(PRIORITY_HEADER);
    if (v === undefined || v.length !== 1) return this.#defaultPriority;
    const p = v.charCodeAt(0) - 48;
    return p >= 0 && p <= 9 ? p : this.#defaultPriority;
  }
}

/**
 * The error of a shed call, made without a stack trace: capturing one was the largest cost of a
 * rejection at the door, and a shed call's stack says nothing (it is always the door's).
 */
function shedError(): WeftError {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return new WeftError(Code.RESOURCE_EXHAUSTED, "server overloaded: call shed", {
      reason: Reason.OVERLOADED,
    });
  } finally {
    Error.stackTraceLimit = limit;
  }
}
