import {
  type Call,
  type CallHandler,
  type CallResult,
  Code,
  ConfigError,
  type Interceptor,
  Reason,
  type Telemetry,
  WeftError,
} from "@weft/core";
import {
  armDeadline,
  type DeadlineTimer,
  deadlineAfter,
  emit,
  errorWithoutStack,
  settleWithin,
  telemetryOption,
} from "@weft/core/internal";
import { positiveOption } from "./limit/limiter.ts";

/** Options of `bulkhead`. */
export interface BulkheadOptions {
  /** Calls of one method running at once. Required, an integer ≥ 1. */
  maxConcurrent: number;
  /** Calls of one method waiting for a slot; beyond it a call is refused at once. Default: 0 (no queue). */
  maxQueue?: number;
  /** Longest a call waits in the queue, in milliseconds, before it is refused. Default: 1000. */
  queueTimeoutMs?: number;
  /** Told of every refusal (`bulkhead.rejected`). Default: none. */
  telemetry?: Telemetry | undefined;
}

/**
 * A bulkhead per method: at most `maxConcurrent` calls of a method run at once, up to `maxQueue`
 * more wait (first come, first served) for at most `queueTimeoutMs`, and the rest are refused at
 * once, so one slow method cannot take every resource of the process. Refusals are
 * RESOURCE_EXHAUSTED with reason `BULKHEAD_FULL`. A queued call whose signal aborts or whose
 * deadline passes leaves the queue. A streaming call holds its slot until its response stream ends.
 */
export function bulkhead(options: BulkheadOptions): Interceptor {
  const maxConcurrent = integer("maxConcurrent", options.maxConcurrent, undefined, 1);
  const maxQueue = integer("maxQueue", options.maxQueue, 0, 0);
  const queueTimeoutMs = positiveOption("queueTimeoutMs", options.queueTimeoutMs, 1000);
  const telemetry = telemetryOption(options.telemetry);
  const compartments = new Map<string, Compartment>();
  return (next) => (call) => {
    const path = call.method.path;
    let c = compartments.get(path);
    if (c === undefined) {
      c = new Compartment(maxConcurrent, maxQueue, queueTimeoutMs, path, telemetry);
      compartments.set(path, c);
    }
    return c.run(call, next);
  };
}

function integer(option: string, v: unknown, fallback: number | undefined, min: number): number {
  if (v === undefined && fallback !== undefined) return fallback;
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min) {
    throw new ConfigError(option, `an integer ≥ ${min}`, v);
  }
  return v;
}

/** A waiting call: granted a slot by `release`, or refused by its queue timer. */
class Waiter {
  resolve!: () => void;
  reject!: (e: WeftError) => void;
  readonly promise: Promise<void>;
  timer: DeadlineTimer | undefined;
  settled = false;
  constructor() {
    this.promise = new Promise<void>((res, rej) => {
      this.resolve = res;
      this.reject = rej;
    });
  }
}

class Compartment {
  running = 0;
  readonly queue: Waiter[] = [];

  readonly maxConcurrent: number;
  readonly maxQueue: number;
  readonly queueTimeoutMs: number;
  readonly path: string;
  readonly telemetry: Telemetry | undefined;

  constructor(
    maxConcurrent: number,
    maxQueue: number,
    queueTimeoutMs: number,
    path: string,
    telemetry: Telemetry | undefined,
  ) {
    this.maxConcurrent = maxConcurrent;
    this.maxQueue = maxQueue;
    this.queueTimeoutMs = queueTimeoutMs;
    this.path = path;
    this.telemetry = telemetry;
  }

  run(call: Call, next: CallHandler): Promise<CallResult> {
    if (this.running < this.maxConcurrent) {
      this.running++;
      return this.#inSlot(call, next);
    }
    if (this.queue.length >= this.maxQueue) return Promise.reject(this.#refuse("full"));
    const w = new Waiter();
    w.timer = armDeadline(deadlineAfter(this.queueTimeoutMs), () => this.#timeout(w));
    this.queue.push(w);
    return settleWithin(w.promise, call.signal, call.deadline).then(
      () => this.#inSlot(call, next),
      (e: unknown) => {
        // aborted or past its deadline while queued: leave the queue, or hand on a slot just granted
        if (!w.settled) this.#leave(w);
        else if (!(e instanceof WeftError && e.reason === Reason.BULKHEAD_FULL)) this.#release();
        throw e;
      },
    );
  }

  #inSlot(call: Call, next: CallHandler): Promise<CallResult> {
    let result: Promise<CallResult>;
    try {
      result = next(call);
    } catch (e) {
      this.#release();
      return Promise.reject(e);
    }
    return result.then(
      (r) => {
        if (!r.stream) {
          this.#release();
          return r;
        }
        return { ...r, messages: this.#releasing(r.messages) };
      },
      (e: unknown) => {
        this.#release();
        throw e;
      },
    );
  }

  async *#releasing<T>(messages: AsyncIterable<T>): AsyncIterable<T> {
    try {
      yield* messages;
    } finally {
      this.#release();
    }
  }

  #release(): void {
    const w = this.queue.shift();
    if (w === undefined) {
      this.running--;
      return;
    }
    // the slot passes to the first waiter: `running` stays
    w.settled = true;
    w.timer?.cancel();
    w.resolve();
  }

  #timeout(w: Waiter): void {
    if (w.settled) return;
    w.settled = true;
    this.#leave(w);
    w.reject(this.#refuse("timeout"));
  }

  #leave(w: Waiter): void {
    w.timer?.cancel();
    const i = this.queue.indexOf(w);
    if (i >= 0) this.queue.splice(i, 1);
  }

  #refuse(why: "full" | "timeout"): WeftError {
    if (this.telemetry !== undefined) emit(this.telemetry, "bulkhead.rejected", { method: this.path, why });
    // without a stack: refusals come in bulk under overload (`errorWithoutStack`)
    return errorWithoutStack(
      Code.RESOURCE_EXHAUSTED,
      why === "full"
        ? `bulkhead full for ${this.path}`
        : `waited ${this.queueTimeoutMs} ms for a slot of ${this.path}`,
      { reason: Reason.BULKHEAD_FULL },
    );
  }
}
