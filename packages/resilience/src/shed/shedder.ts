import {
  type CallAdmission,
  Code,
  ConfigError,
  type Metadata,
  Reason,
  type Telemetry,
  type WeftError,
} from "@weft/core";
import { emit, errorWithoutStack, readTurn, telemetryOption } from "@weft/core/internal";
import { clockOption, positiveOption } from "../limit/limiter.ts";
import { type LoadSource, processLoad } from "./load.ts";

/** The request header carrying a call's priority, an integer 0 (shed first) to 9; default 5. */
export const PRIORITY_HEADER = "weft-priority";

/** Options of `shedder`. */
export interface ShedderOptions {
  /**
   * The longest a call of the default priority may have queued (from the earliest its request can
   * have arrived at the socket to its admission, see `CallAdmission.admit`) while the process is
   * busy, in milliseconds. Default: 2.
   */
  targetDelayMs?: number;
  /**
   * Busy above this event-loop utilisation (0–1, see `LoadSource.utilization`); below it nothing is
   * shed, so a burst on an otherwise idle server is queued, not dropped. Default: 0.9.
   */
  utilizationThreshold?: number;
  /**
   * Once a call is dropped, calls that queued past their allowed delay keep being dropped for this
   * long without looking at the utilisation, in milliseconds; every drop restarts it. Shedding keeps
   * the event loop from being saturated, so without it the shedder would stop as soon as it works.
   * Default: 1000.
   */
  holdMs?: number;
  /** Priority of a call without a valid `weft-priority` header. Default: 5. */
  defaultPriority?: number;
  /** Where event-loop utilisation is read. Default: `processLoad()` (over 100 ms). */
  load?: LoadSource;
  /** The clock, in milliseconds, the one `arrivedAt` is given in. Default: `performance.now`. */
  now?: () => number;
  /**
   * The number of the event loop's turn reading now, the same for every call opened in one turn.
   * Default: core's count of reading turns. For tests.
   */
  turn?: () => number;
  /** Told of every dropped call (`shed.dropped`). Default: none. */
  telemetry?: Telemetry | undefined;
}

/** What the shedder knows now. */
export interface ShedStats {
  /** Admitted calls not finished yet. */
  readonly inFlight: number;
  /** Event-loop utilisation as last read, 0–1. */
  readonly utilization: number;
  /** How long the last call asked about had queued, in ms. */
  readonly queueDelayMs: number;
  /** Calls dropped since the shedder was made. */
  readonly dropped: number;
}

/** A load shedder: a `CallAdmission` for `createServer({ admission })`. */
export interface Shedder extends CallAdmission {
  stats(): ShedStats;
  /** Stops the default load source (not an injected `load`). */
  close(): void;
}

/**
 * Load shedding by queueing delay, for Node's execution model: a call is dropped when the process
 * is busy (event-loop utilisation above `utilizationThreshold`) **and** the call has already queued
 * longer than `targetDelayMs`, counted from the earliest its request can have arrived at the
 * socket (`arrivedAt`: the read it came in, or the previous turn's first read when the loop went
 * straight on from it) to its admission, **and** some admitted call is still running or this turn
 * already admitted one. On Weft TCP the calls read in one turn run their synchronous handlers one
 * after another, so the delay of each is the socket wait plus the work admitted ahead of it;
 * bounding it bounds how long a turn runs, hence how long the next requests wait in the socket,
 * hence the latency of every admitted call. The first call of a turn that finds nothing running is
 * admitted whatever it waited: dropping it would only leave the process idle. An idle server
 * absorbs a burst instead (utilisation stays low). Once a call was dropped, calls that queued too
 * long are dropped for `holdMs` more whatever the utilisation (every drop restarts it): shedding
 * stops when calls stop queueing, as with CoDel.
 *
 * Calls carry a priority (`weft-priority`, 0–9, default 5): a call of priority p may queue
 * `targetDelayMs × (0.5 + p / 10)`, so while busy low priorities go first and 9 waits 40% longer
 * than 5.
 *
 * Given as `createServer({ admission: shedder() })` it runs at the server door: a dropped call is
 * answered RESOURCE_EXHAUSTED, reason `OVERLOADED`, before its body is decoded or any interceptor
 * runs.
 */
export function shedder(options: ShedderOptions = {}): Shedder {
  return new DelayShedder(options);
}

class DelayShedder implements Shedder {
  /** Allowed queueing delay per priority 0–9, in ms. */
  readonly #allowedMs: Float64Array;
  readonly #utilizationThreshold: number;
  readonly #holdMs: number;
  readonly #defaultPriority: number;
  readonly #load: LoadSource;
  readonly #ownLoad: boolean;
  readonly #now: () => number;
  readonly #telemetry: Telemetry | undefined;
  readonly #turn: () => number;
  #inFlight = 0;
  /** The turn the last call was admitted in. */
  #admittedTurn = Number.NaN;
  #dropped = 0;
  #lastDelay = 0;
  /** The utilisation as last read. */
  #utilization = 0;
  /** Calls that queued too long are dropped until then without reading the utilisation. */
  #holdUntil = Number.NEGATIVE_INFINITY;

  constructor(options: ShedderOptions) {
    const target = positiveOption("targetDelayMs", options.targetDelayMs, 2);
    this.#allowedMs = Float64Array.from({ length: 10 }, (_, p) => target * (0.5 + p / 10));
    const u = options.utilizationThreshold ?? 0.9;
    if (typeof u !== "number" || !(u >= 0 && u < 1)) {
      throw new ConfigError("utilizationThreshold", "a number ≥ 0 and < 1", u);
    }
    this.#utilizationThreshold = u;
    this.#holdMs = positiveOption("holdMs", options.holdMs, 1000, true);
    const p = options.defaultPriority ?? 5;
    if (!Number.isInteger(p) || p < 0 || p > 9) throw new ConfigError("defaultPriority", "an integer 0–9", p);
    this.#defaultPriority = p;
    this.#ownLoad = options.load === undefined;
    this.#load = options.load ?? processLoad();
    this.#now = options.now === undefined ? () => performance.now() : clockOption(options.now);
    const turn = options.turn ?? readTurn;
    if (typeof turn !== "function") throw new ConfigError("turn", "a function returning a number", turn);
    this.#turn = turn;
    this.#telemetry = telemetryOption(options.telemetry);
  }

  admit(path: string, headers: Metadata, arrivedAt: number): WeftError | undefined {
    const now = this.#now();
    const delay = now - arrivedAt;
    this.#lastDelay = delay;
    const turn = this.#turn();
    // cheap test first: a call that has not queued beyond the most any priority may is never shed;
    // nor is the first of a turn that finds no admitted call running: dropping it would leave the
    // process idle without shortening anyone's wait
    if (
      delay <= this.#allowedMs[0]! ||
      (this.#inFlight === 0 && turn !== this.#admittedTurn) ||
      delay <= this.#allowedMs[this.#priority(headers)]!
    ) {
      this.#inFlight++;
      this.#admittedTurn = turn;
      return undefined;
    }
    if (now >= this.#holdUntil) {
      this.#utilization = this.#load.utilization();
      if (this.#utilization <= this.#utilizationThreshold) {
        this.#inFlight++;
        this.#admittedTurn = turn;
        return undefined;
      }
    }
    this.#holdUntil = now + this.#holdMs;
    this.#dropped++;
    if (this.#telemetry !== undefined) {
      emit(this.#telemetry, "shed.dropped", {
        method: path,
        priority: this.#priority(headers),
        queueDelayMs: delay,
        utilization: this.#utilization,
        inFlight: this.#inFlight,
      });
    }
    return SHED;
  }

  finished(_durationMs: number): void {
    this.#inFlight--;
  }

  stats(): ShedStats {
    return {
      inFlight: this.#inFlight,
      utilization: this.#load.utilization(),
      queueDelayMs: this.#lastDelay,
      dropped: this.#dropped,
    };
  }

  close(): void {
    if (this.#ownLoad) this.#load.close();
  }

  #priority(headers: Metadata): number {
    const v = headers.get(PRIORITY_HEADER);
    if (v === undefined || v.length !== 1) return this.#defaultPriority;
    const p = v.charCodeAt(0) - 48;
    return p >= 0 && p <= 9 ? p : this.#defaultPriority;
  }
}

/**
 * The error of a shed call, made once and without a stack trace: a shed call's stack says nothing
 * (it is always the door's), and one shared error costs a rejection no allocation.
 */
const SHED = errorWithoutStack(Code.RESOURCE_EXHAUSTED, "server overloaded: call shed", {
  reason: Reason.OVERLOADED,
});
