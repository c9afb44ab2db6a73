/*
 * Retries of unary calls: exponential backoff with jitter (core's `backoffDelay`), retryable codes,
 * never past the caller's deadline, a retry budget, a marker that stops a chain from retrying at
 * every hop, and the server's pushback.
 */
import {
  type Call,
  type CallHandler,
  type CallResult,
  Code,
  ConfigError,
  currentCallContext,
  type Interceptor,
  isDownstreamError,
  type Telemetry,
  WeftError,
} from "@weft/core";
import {
  abortError,
  type BackoffOptions,
  backoffDelay,
  earlierDeadline,
  emit,
  isSpent,
  type PauseOptions,
  pause,
  telemetryOption,
} from "@weft/core/internal";
import { isBreakerRejection } from "./breaker/breaker.ts";
import { type RetryBudget, retryBudget } from "./budget.ts";

/**
 * Request header of a retried attempt: how many attempts went before it (`"1"` for the first
 * retry). The retry policy of a handler that received it does not retry that handler's outgoing
 * calls and sends them with the same marker, so the hops below do not retry either: a chain of
 * services that all retry grows its attempts linearly with its length, not as `maxAttempts` to the
 * power of it. Only the retry policy carries it on (it is not a `weft-ctx-` header).
 */
export const RETRIED_KEY = "weft-retried";

/**
 * Trailer of a server's pushback: a whole number of milliseconds to wait before the next attempt
 * (instead of the backoff), or a negative number or `"stop"` for no retry at all.
 */
export const RETRY_AFTER_KEY = "retry-after-ms";

/** Options of `retry`. */
export interface RetryOptions {
  /** Attempts in all, the first included (an integer ≥ 1). Default 3. */
  readonly maxAttempts?: number;
  /** Waits between attempts: doubling from `initialDelayMs` up to `maxDelayMs`, ±20% jitter. Default 50 ms to 1,000 ms. */
  readonly backoff?: BackoffOptions;
  /** Codes that are retried. Default `[Code.UNAVAILABLE]`. */
  readonly codes?: readonly Code[];
  /**
   * Budget of each attempt in milliseconds, within the call's own deadline. An attempt that runs out
   * of it (`DEADLINE_EXCEEDED` while the call's deadline has not passed) is retried when the method
   * is idempotent. Default: none (each attempt has what is left of the call's budget).
   */
  readonly attemptTimeoutMs?: number;
  /** The retry budget this policy draws on; share one between clients to cap them together. Default: its own `retryBudget()`. */
  readonly budget?: RetryBudget;
  /** Receives `retry.attempt`, `retry.budget_exhausted` and `retry.pushback`. Default: none. */
  readonly telemetry?: Telemetry;
  /** Jitter source, a number in [0, 1) (for tests). Default `Math.random`. */
  readonly random?: () => number;
}

/**
 * Retries unary and one-way calls that fail with a retryable code (default `UNAVAILABLE`; for
 * idempotent methods also an attempt's own `DEADLINE_EXCEEDED` while the call's deadline has not
 * passed). Streaming calls are not retried: their request stream cannot be read twice, and a
 * partly received response cannot be taken back (calls the server refused before starting them are
 * resent by the transport, streams included).
 *
 * A call is not retried when: it used its `maxAttempts`; the next attempt would start at or after
 * its deadline; its signal aborted; the retry budget is spent; the error is a server's relay of a
 * downstream failure (`weft-downstream: 1`, see `createServer({ errors })`); the server pushed back
 * with `retry-after-ms: stop` (or a negative number); or the call is made inside a handler whose own
 * call was a retry (`weft-retried` received: the call carries it on), so a chain does not multiply
 * its attempts. Retried attempts carry `weft-retried`.
 *
 * ```ts
 * createClient(Catalog, transport, { interceptors: [timeout({ ms: 1_000 }), retry({ maxAttempts: 3 })] });
 * ```
 */
export function retry(options: RetryOptions = {}): Interceptor {
  const policy = new RetryPolicy(options);
  return (next) => (call) => (call.stream ? next(call) : policy.run(next, call));
}

const DEFAULT_BACKOFF: BackoffOptions = { initialDelayMs: 50, maxDelayMs: 1_000 };

/** A backoff is part of a call someone awaits: it keeps the process alive, as the call would. */
const FOREGROUND: PauseOptions = { ref: true };

class RetryPolicy {
  readonly #maxAttempts: number;
  readonly #backoff: BackoffOptions;
  readonly #codes: ReadonlySet<Code>;
  readonly #attemptTimeoutMs: number | undefined;
  readonly #budget: RetryBudget;
  readonly #telemetry: Telemetry | undefined;
  readonly #random: () => number;

  constructor(options: RetryOptions) {
    const maxAttempts = options.maxAttempts ?? 3;
    if (!Number.isInteger(maxAttempts) || maxAttempts < 1) {
      throw new ConfigError("maxAttempts", "an integer ≥ 1", maxAttempts);
    }
    const backoff = options.backoff ?? DEFAULT_BACKOFF;
    if (!(backoff.initialDelayMs >= 0) || !(backoff.maxDelayMs >= backoff.initialDelayMs)) {
      throw new ConfigError("backoff", "{ initialDelayMs ≥ 0, maxDelayMs ≥ initialDelayMs }", backoff);
    }
    if (options.codes !== undefined && !Array.isArray(options.codes)) {
      throw new ConfigError("codes", "an array of codes", options.codes);
    }
    const attemptTimeoutMs = options.attemptTimeoutMs;
    if (attemptTimeoutMs !== undefined && !(attemptTimeoutMs > 0 && Number.isFinite(attemptTimeoutMs))) {
      throw new ConfigError("attemptTimeoutMs", "a positive finite number of milliseconds", attemptTimeoutMs);
    }
    const budget = options.budget ?? retryBudget();
    if (typeof budget?.tryRetry !== "function" || typeof budget.recordRequest !== "function") {
      throw new ConfigError("budget", "a RetryBudget (retryBudget(...))", budget);
    }
    this.#maxAttempts = maxAttempts;
    this.#backoff = backoff;
    this.#codes = new Set(options.codes ?? [Code.UNAVAILABLE]);
    this.#attemptTimeoutMs = attemptTimeoutMs;
    this.#budget = budget;
    this.#telemetry = telemetryOption(options.telemetry);
    this.#random = options.random ?? Math.random;
  }

  /**
   * The first attempt goes straight to `next`, with no async frame in between: a call that succeeds
   * at once pays one `then`. The retry loop runs only once an attempt failed.
   */
  run(next: CallHandler, call: Call): Promise<CallResult> {
    try {
      this.#budget.recordRequest();
      const inbound = currentCallContext()?.requestHeaders.get(RETRIED_KEY);
      if (inbound !== undefined) {
        // made by a handler whose own call was a retry: no retry here, and the hops below are told
        call.headers.set(RETRIED_KEY, inbound);
        return next(call);
      }
      if (this.#maxAttempts === 1) return next(call);
    } catch (error) {
      return Promise.reject(error);
    }
    const deadline = call.deadline;
    let first: Promise<CallResult>;
    try {
      this.#limitAttempt(call, deadline);
      first = next(call);
    } catch (error) {
      return this.#retryAfter(error, next, call, deadline);
    }
    return first.then(undefined, (error: unknown) => this.#retryAfter(error, next, call, deadline));
  }

  /** Attempt 1 failed with `error`: waits and sends attempts 2… while `#delayAfter` allows them. */
  async #retryAfter(
    error: unknown,
    next: CallHandler,
    call: Call,
    deadline: number | undefined,
  ): Promise<CallResult> {
    for (let attempt = 1; ; attempt++) {
      const delay = this.#delayAfter(error, call, attempt, deadline);
      if (delay === undefined) throw error;
      if (!(await pause(delay, call.signal, FOREGROUND))) throw abortError(call.signal);
      call.headers.set(RETRIED_KEY, String(attempt));
      call.deadline = deadline;
      try {
        this.#limitAttempt(call, deadline);
        return await next(call);
      } catch (e) {
        error = e;
      }
    }
  }

  /** With `attemptTimeoutMs`, the attempt about to go gets the earlier of its budget and `deadline`. */
  #limitAttempt(call: Call, deadline: number | undefined): void {
    const attemptMs = this.#attemptTimeoutMs;
    if (attemptMs !== undefined) call.deadline = earlierDeadline(deadline, Date.now() + attemptMs);
  }

  /** How long to wait before attempt `attempt + 1`, or `undefined` for no retry. */
  #delayAfter(error: unknown, call: Call, attempt: number, deadline: number | undefined): number | undefined {
    if (!(error instanceof WeftError) || attempt >= this.#maxAttempts || call.signal.aborted)
      return undefined;
    const code = error.code;
    const retryable =
      this.#codes.has(code) ||
      (code === Code.DEADLINE_EXCEEDED && call.method.idempotent && !isSpent(deadline));
    // an open breaker's rejection is its fail-fast: waiting a backoff to meet it again only delays
    // the caller and spends budget (a half-open breaker lets its probes through to new calls); a
    // server's CIRCUIT_OPEN is that instance's, and is retried like any UNAVAILABLE
    if (!retryable || isDownstreamError(error) || isBreakerRejection(error)) return undefined;
    const path = call.method.path;
    let delay: number;
    const pushback = error.metadata.get(RETRY_AFTER_KEY);
    if (pushback !== undefined) {
      const ms = pushback.trim() === "stop" ? -1 : Number(pushback);
      const stop = !(ms >= 0);
      if (this.#telemetry !== undefined) {
        emit(this.#telemetry, "retry.pushback", { path, retryAfterMs: stop ? undefined : ms });
      }
      if (stop) return undefined;
      delay = ms;
    } else {
      delay = backoffDelay(attempt, this.#backoff, this.#random);
    }
    if (deadline !== undefined && Date.now() + delay >= deadline) return undefined;
    if (!this.#budget.tryRetry()) {
      if (this.#telemetry !== undefined) emit(this.#telemetry, "retry.budget_exhausted", { path, code });
      return undefined;
    }
    if (this.#telemetry !== undefined) {
      emit(this.#telemetry, "retry.attempt", { path, attempt: attempt + 1, code, delayMs: delay });
    }
    return delay;
  }
}
