/*
 * Hedged (backup) requests for idempotent unary methods: after a delay without an answer, the same
 * call is sent again; the first answer wins and the other attempts are cancelled.
 */
import {
  type Call,
  type CallHandler,
  type CallResult,
  Code,
  ConfigError,
  type Interceptor,
  Metadata,
  Reason,
  type Telemetry,
  WeftError,
} from "@weft/core";
import { armDeadline, type DeadlineTimer, eitherSignal, emit, telemetryOption } from "@weft/core/internal";

/** Options of `hedge`. */
export interface HedgeOptions {
  /**
   * Milliseconds to wait for an answer before sending the next hedge, or `"p95"`: the 95th
   * percentile of the method's last 100 successful latencies (no hedging until 20 were seen).
   */
  readonly delayMs: number | "p95";
  /** Extra attempts at most (an integer ≥ 1). Default 1. */
  readonly maxHedges?: number;
  /**
   * Codes after which the call goes on with the other attempts (and sends the next hedge at once);
   * any other error ends the call with it. Default `[Code.UNAVAILABLE]`.
   */
  readonly codes?: readonly Code[];
  /** Receives `hedge.sent` and `hedge.won`. Default: none. */
  readonly telemetry?: Telemetry;
}

/**
 * Hedges unary calls of idempotent methods (`MethodInfo.idempotent`); other calls go through as
 * they are. The first attempt is sent at once, another after each `delayMs` without an answer, up to
 * `maxHedges`; the first success wins and the other attempts' signals abort (their servers see the
 * calls cancelled). An error with a code in `codes` sends the next hedge at once; the call fails when
 * every attempt has failed, with the last error.
 *
 * ```ts
 * createClient(Catalog, transport, { interceptors: [hedge({ delayMs: "p95", maxHedges: 1 })] });
 * ```
 */
export function hedge(options: HedgeOptions): Interceptor {
  const delay = options?.delayMs;
  if (delay !== "p95" && !(typeof delay === "number" && delay >= 0 && Number.isFinite(delay))) {
    throw new ConfigError("delayMs", 'a number of milliseconds ≥ 0 or "p95"', delay);
  }
  const maxHedges = options.maxHedges ?? 1;
  if (!Number.isInteger(maxHedges) || maxHedges < 1) {
    throw new ConfigError("maxHedges", "an integer ≥ 1", maxHedges);
  }
  if (options.codes !== undefined && !Array.isArray(options.codes)) {
    throw new ConfigError("codes", "an array of codes", options.codes);
  }
  const settings: HedgeSettings = {
    maxHedges,
    codes: new Set(options.codes ?? [Code.UNAVAILABLE]),
    telemetry: telemetryOption(options.telemetry),
  };
  const latencies = delay === "p95" ? new Map<string, LatencyWindow>() : undefined;
  return (next) => (call) => {
    if (call.stream || !call.method.idempotent) return next(call);
    if (latencies === undefined) return new HedgedCall(next, call, delay as number, settings).result;
    let window = latencies.get(call.method.path);
    if (window === undefined) {
      window = new LatencyWindow();
      latencies.set(call.method.path, window);
    }
    const p95 = window.p95();
    if (p95 === undefined) return window.timed(next(call));
    return window.timed(new HedgedCall(next, call, p95, settings).result);
  };
}

interface HedgeSettings {
  readonly maxHedges: number;
  readonly codes: ReadonlySet<Code>;
  readonly telemetry: Telemetry | undefined;
}

/** One hedged call: its attempts (each with its own controller), the hedge timer, one settlement. */
class HedgedCall {
  readonly result: Promise<CallResult>;
  readonly #next: CallHandler;
  readonly #call: Call;
  readonly #delayMs: number;
  readonly #settings: HedgeSettings;
  readonly #attempts: AbortController[] = [];
  readonly #start = Date.now();
  #pending = 0;
  #settled = false;
  #timer: DeadlineTimer | undefined;
  #resolve!: (result: CallResult) => void;
  #reject!: (error: unknown) => void;

  constructor(next: CallHandler, call: Call, delayMs: number, settings: HedgeSettings) {
    this.#next = next;
    this.#call = call;
    this.#delayMs = delayMs;
    this.#settings = settings;
    this.result = new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    this.#launch();
  }

  #launch(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
    const index = this.#attempts.length;
    const controller = new AbortController();
    this.#attempts.push(controller);
    const call = this.#call;
    const headers = new Metadata().merge(call.headers);
    const attempt: Call = { ...call, headers, signal: eitherSignal(call.signal, controller.signal) };
    if (index > 0 && this.#settings.telemetry !== undefined) {
      emit(this.#settings.telemetry, "hedge.sent", {
        path: call.method.path,
        hedge: index,
        delayMs: Date.now() - this.#start,
      });
    }
    this.#pending++;
    this.#next(attempt).then(
      (result) => this.#won(index, result, attempt),
      (error: unknown) => this.#failed(error),
    );
    if (index < this.#settings.maxHedges) {
      this.#timer = armDeadline(Date.now() + this.#delayMs, launchNext, this);
    }
  }

  /** The hedge timer fired without an answer. */
  hedgeNow(): void {
    if (!this.#settled) this.#launch();
  }

  #won(index: number, result: CallResult, attempt: Call): void {
    this.#pending--;
    if (this.#settled) return;
    const cancelled = this.#end(index);
    this.#call.peer = attempt.peer;
    this.#call.protocol = attempt.protocol;
    if (this.#settings.telemetry !== undefined && this.#attempts.length > 1) {
      emit(this.#settings.telemetry, "hedge.won", {
        path: this.#call.method.path,
        attempt: index,
        cancelled,
      });
    }
    this.#resolve(result);
  }

  #failed(error: unknown): void {
    this.#pending--;
    if (this.#settled) return;
    const goOn =
      error instanceof WeftError && this.#settings.codes.has(error.code) && !this.#call.signal.aborted;
    if (goOn && this.#attempts.length <= this.#settings.maxHedges) {
      this.#launch();
      return;
    }
    if (goOn && this.#pending > 0) return;
    this.#end(-1);
    this.#reject(error);
  }

  /** Settles: stops the timer and cancels every attempt but `winner`; returns how many were cancelled. */
  #end(winner: number): number {
    this.#settled = true;
    this.#timer?.cancel();
    this.#timer = undefined;
    let cancelled = 0;
    for (let i = 0; i < this.#attempts.length; i++) {
      const controller = this.#attempts[i]!;
      if (i === winner || controller.signal.aborted) continue;
      controller.abort(
        new WeftError(Code.CANCELLED, "another hedged attempt answered first", { reason: Reason.CANCELLED }),
      );
      cancelled++;
    }
    return cancelled;
  }
}

function launchNext(call: HedgedCall): void {
  call.hedgeNow();
}

const WINDOW = 100;
const MIN_SAMPLES = 20;
/** The percentile is recomputed after this many new samples, not on every call. */
const RECOMPUTE_EVERY = 10;

/** The last 100 successful latencies of one method, and their 95th percentile. */
class LatencyWindow {
  readonly #samples = new Float64Array(WINDOW);
  #count = 0;
  #p95: number | undefined = undefined;

  p95(): number | undefined {
    return this.#p95;
  }

  /** Records the latency of `pending` once it succeeds; returns it as it is. */
  timed(pending: Promise<CallResult>): Promise<CallResult> {
    const start = performance.now();
    return pending.then((result) => {
      this.#add(performance.now() - start);
      return result;
    });
  }

  #add(ms: number): void {
    this.#samples[this.#count % WINDOW] = ms;
    this.#count++;
    if (this.#count >= MIN_SAMPLES && this.#count % RECOMPUTE_EVERY === 0) {
      const sorted = this.#samples.slice(0, Math.min(this.#count, WINDOW)).sort();
      this.#p95 = sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.95) - 1)];
    }
  }
}
