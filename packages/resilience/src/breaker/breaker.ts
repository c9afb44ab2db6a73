/*
 * One circuit breaker: the state machine closed → open → half-open of the trip rules, or adaptive
 * throttling. The interceptor keeps one per method or service, `instanceBreakers` one per node.
 */
import { Code, ConfigError, Reason, type Telemetry, WeftError } from "@weft/core";
import {
  coarseNow,
  emit,
  errorWithoutStack,
  functionOption,
  isNodeFailure,
  numberOption,
  telemetryOption,
} from "@weft/core/internal";
import { BucketWindow } from "../window.ts";
import {
  type BreakerRule,
  integerOption,
  readsLatency,
  type ThrottleRule,
  type TripCounter,
  type TripRule,
} from "./rules.ts";

/** The state of a breaker. Adaptive throttling is always `closed`. */
export type BreakerState = "closed" | "open" | "half-open";

/** Options every breaker takes. */
export interface BreakerOptions {
  /** What trips the breaker: `consecutiveFailures()`, `failureRatio()`, `slowCallRatio()` or `adaptiveThrottling()`. */
  rule: BreakerRule;
  /** Milliseconds an open breaker rejects every call before it lets probes through. Default 5,000. */
  openMs?: number;
  /**
   * Probe calls a half-open breaker lets through at once; that many successes close it, one failure
   * reopens it. Default 1.
   */
  probes?: number;
  /**
   * Which errors count as failures. Default (`isBreakerFailure`): UNAVAILABLE, DEADLINE_EXCEEDED,
   * RESOURCE_EXHAUSTED, INTERNAL, UNKNOWN, DATA_LOSS and anything that is not a `WeftError`; an
   * application's own answer (NOT_FOUND, INVALID_ARGUMENT…) is a success. A cancelled call counts for
   * nothing, and so does a call refused by a server going away (reason REFUSED_STREAM or
   * SHUTTING_DOWN): a graceful restart is not a failing node.
   */
  isFailure?: (error: unknown) => boolean;
  /** Receives `breaker.state` and `breaker.rejected` events. Default none. */
  telemetry?: Telemetry;
  /**
   * The clock, in milliseconds. Default `performance.now`, or for a rule that ignores latency
   * (`consecutiveFailures`, `failureRatio`, `adaptiveThrottling`) core's coarse monotonic clock
   * (`performance.now` read at most once per 10 ms), so a call reads no clock; inject one in tests.
   */
  now?: () => number;
  /** The random source of adaptive throttling, in [0, 1). Default `Math.random`. */
  random?: () => number;
}

/** The options of a breaker, checked and with their defaults, shared by every breaker of one policy. */
export interface BreakerSettings {
  readonly rule: BreakerRule;
  readonly openMs: number;
  readonly probes: number;
  readonly isFailure: (error: unknown) => boolean;
  readonly telemetry: Telemetry | undefined;
  readonly now: () => number;
  readonly random: () => number;
  /** The rule reads a call's latency: the breaker's calls are timed (otherwise their latency is 0). */
  readonly timed: boolean;
}

/** Checks `options` and fills in the defaults. */
export function breakerSettings(options: BreakerOptions): BreakerSettings {
  if (typeof options !== "object" || options === null) throw new ConfigError("options", "an object", options);
  const rule = options.rule;
  if (rule?.kind !== "trip" && rule?.kind !== "throttle") {
    throw new ConfigError(
      "rule",
      "consecutiveFailures(), failureRatio(), slowCallRatio() or adaptiveThrottling()",
      rule,
    );
  }
  return {
    rule,
    openMs: numberOption("openMs", options.openMs, 5000, 0),
    probes: integerOption("probes", options.probes, 1),
    isFailure: functionOption(
      "isFailure",
      options.isFailure ?? isBreakerFailure,
      "a function (error) => boolean",
    ),
    telemetry: telemetryOption(options.telemetry),
    now: functionOption(
      "now",
      options.now ?? (readsLatency(rule) ? () => performance.now() : coarseNow),
      "a function returning milliseconds",
    ),
    random: functionOption(
      "random",
      options.random ?? Math.random,
      "a function returning a number in [0, 1)",
    ),
    timed: readsLatency(rule),
  };
}

/**
 * The breakers' default `isFailure`: core's node-failure test, except for a call a server going away
 * refused before starting it (REFUSED_STREAM, SHUTTING_DOWN), which says nothing about its health.
 */
export function isBreakerFailure(error: unknown): boolean {
  return isNodeFailure(error) && !isLeaving(error);
}

function isLeaving(error: unknown): boolean {
  return (
    error instanceof WeftError &&
    (error.reason === Reason.REFUSED_STREAM || error.reason === Reason.SHUTTING_DOWN)
  );
}

/**
 * How a call ended, for a breaker: a failure, a success, or neither (cancelled by its caller, or
 * refused by a server going away).
 */
export function outcomeOf(settings: BreakerSettings, error: unknown): boolean | undefined {
  if (error instanceof WeftError && (error.code === Code.CANCELLED || isLeaving(error))) return undefined;
  return settings.isFailure(error);
}

/** One breaker. */
export interface Breaker {
  readonly name: string;
  readonly state: BreakerState;
  /** True while it may reject calls (open, half-open, or throttling with a probability above 0). */
  readonly restricting: boolean;
  /**
   * True when a call may go now. Claims nothing (`take` does), except that adaptive throttling draws
   * its random number here.
   */
  admits(): boolean;
  /**
   * A call admitted by `admits` goes out: an open breaker whose time is up turns half-open. Returns
   * the call's permit, the generation of the state it was admitted in, to give back to `done`.
   */
  take(): number;
  /** A call was rejected locally. */
  rejected(): void;
  /**
   * How the call given `permit` by `take` ended: failed (`true`), succeeded, or neither (`undefined`),
   * after `latencyMs`, at `now` (the settings' clock, read once by the caller for both). It counts
   * only while the state it was admitted in lasts: a closed call's by the trip rule, a probe's by the
   * half-open rule; the outcome of a call admitted in a state that is over counts for nothing.
   */
  done(permit: number, failure: boolean | undefined, latencyMs: number, now: number): void;
  /** The error of a rejected call: UNAVAILABLE, reason CIRCUIT_OPEN. */
  error(): WeftError;
}

/** A breaker named `name` (what it guards) with `settings`. */
export function createBreaker(name: string, settings: BreakerSettings): Breaker {
  return settings.rule.kind === "trip"
    ? new StateBreaker(name, settings, settings.rule)
    : new ThrottleBreaker(name, settings, settings.rule);
}

/**
 * UNAVAILABLE/CIRCUIT_OPEN, the error of every call a breaker rejects; without a stack, as an open
 * breaker rejects in bulk (`errorWithoutStack`). Marked, so a policy can tell it from the same code
 * and reason a server sent (another instance's breaker).
 */
export function circuitOpen(message: string): WeftError {
  const error = errorWithoutStack(Code.UNAVAILABLE, message, { reason: Reason.CIRCUIT_OPEN });
  Object.defineProperty(error, localRejection, { value: true });
  return error;
}

/** Marks a breaker's own rejection; `Symbol.for`, so two installed copies of the package agree. */
const localRejection = Symbol.for("@weft/resilience/breakerRejection");

/**
 * True for the error a breaker of this process rejected a call with (`circuitOpen`): never for one
 * decoded from a peer's answer, whatever its reason.
 */
export function isBreakerRejection(error: unknown): boolean {
  return typeof error === "object" && error !== null && localRejection in error;
}

/**
 * The last state generation given out. Numbered across every breaker of the process, so a permit
 * names one state of one breaker: a breaker made again for a node that left and came back never
 * counts the outcome of a call its predecessor admitted.
 */
let generations = 0;

/** closed → open (after the rule trips) → half-open (after `openMs`, `probes` calls) → closed or open. */
class StateBreaker implements Breaker {
  readonly name: string;
  state: BreakerState = "closed";
  readonly #settings: BreakerSettings;
  readonly #counter: TripCounter;
  readonly #slowCallMs: number;
  #openedAt = 0;
  /** The generation of the state: a new one at every move, the permit of the calls it admits. */
  #generation = ++generations;
  /** Half-open: probes in flight, and probes that succeeded. */
  #probing = 0;
  #passed = 0;

  constructor(name: string, settings: BreakerSettings, rule: TripRule) {
    this.name = name;
    this.#settings = settings;
    this.#counter = rule.counter();
    this.#slowCallMs = rule.slowCallMs ?? Number.POSITIVE_INFINITY;
  }

  get restricting(): boolean {
    return this.state !== "closed";
  }

  admits(): boolean {
    switch (this.state) {
      case "closed":
        return true;
      case "open":
        return this.#settings.now() - this.#openedAt >= this.#settings.openMs;
      case "half-open":
        return this.#probing + this.#passed < this.#settings.probes;
    }
  }

  take(): number {
    if (this.state === "open") this.#move("half-open");
    if (this.state === "half-open") this.#probing++;
    return this.#generation;
  }

  rejected(): void {}

  done(permit: number, failure: boolean | undefined, latencyMs: number, now: number): void {
    // admitted in a state that is over (a call sent while closed, answering once the breaker opened;
    // a probe of an earlier half-open period): its rule no longer runs, and it is no probe of this one
    if (permit !== this.#generation) return;
    if (this.state === "closed") {
      if (failure === undefined) return;
      if (this.#counter.record(now, failure, latencyMs)) this.#open();
      return;
    }
    // half-open (an open state admits no call: `take` moves it on first): one of its probes
    this.#probing--;
    if (failure === undefined) return;
    if (failure || latencyMs > this.#slowCallMs) this.#open();
    else if (++this.#passed >= this.#settings.probes) this.#move("closed");
  }

  error(): WeftError {
    return circuitOpen(`circuit breaker ${this.name} is ${this.state}`);
  }

  #open(): void {
    this.#openedAt = this.#settings.now();
    this.#move("open");
  }

  #move(to: BreakerState): void {
    const from = this.state;
    this.state = to;
    this.#generation = ++generations;
    this.#probing = 0;
    this.#passed = 0;
    if (to === "closed") this.#counter.reset();
    const telemetry = this.#settings.telemetry;
    if (telemetry !== undefined) emit(telemetry, "breaker.state", { name: this.name, from, to });
  }
}

/** Adaptive client-side throttling: rejects at random with the SRE formula's probability. */
class ThrottleBreaker implements Breaker {
  readonly name: string;
  readonly state = "closed";
  restricting = false;
  readonly #settings: BreakerSettings;
  readonly #rule: ThrottleRule;
  readonly #window: BucketWindow;

  constructor(name: string, settings: BreakerSettings, rule: ThrottleRule) {
    this.name = name;
    this.#settings = settings;
    this.#rule = rule;
    this.#window = new BucketWindow(rule.windowMs, rule.buckets);
  }

  /** max(0, (requests − K·accepts) / (requests + 1)) over the window, 0 below `minRequests`. */
  probability(): number {
    const window = this.#window;
    window.slide(this.#settings.now());
    const requests = window.count;
    if (requests < this.#rule.minRequests) return 0;
    return Math.max(0, (requests - this.#rule.k * (requests - window.marked)) / (requests + 1));
  }

  admits(): boolean {
    const p = this.probability();
    this.restricting = p > 0;
    return p <= 0 || this.#settings.random() >= p;
  }

  /** One generation: without states, every outcome counts in the window, however late. */
  take(): number {
    return 0;
  }

  rejected(): void {
    this.#window.add(this.#settings.now(), 1, 1);
  }

  done(_permit: number, failure: boolean | undefined, _latencyMs: number, now: number): void {
    if (failure === undefined) return;
    this.#window.add(now, 1, failure ? 1 : 0);
    if (failure) this.restricting = this.probability() > 0;
  }

  error(): WeftError {
    return circuitOpen(`circuit breaker ${this.name} is throttling`);
  }
}
