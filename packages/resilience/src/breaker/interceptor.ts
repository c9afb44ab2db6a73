import {
  type Call,
  type CallResult,
  ConfigError,
  type Interceptor,
  type MethodInfo,
  type WeftError,
} from "@weft/core";
import { emit } from "@weft/core/internal";
import {
  type Breaker,
  type BreakerOptions,
  type BreakerSettings,
  breakerSettings,
  createBreaker,
  outcomeOf,
} from "./breaker.ts";

/** Options of `circuitBreaker`. */
export interface CircuitBreakerOptions extends BreakerOptions {
  /**
   * What one breaker guards: each method (`"method"`, named by its path `/pkg.Svc/Method`) or each
   * service (`"service"`, named by its type name `pkg.Svc`). Default `"method"`.
   */
  scope?: "method" | "service";
}

/**
 * A client interceptor keeping one circuit breaker per method (or per service): a call its breaker
 * rejects fails at once with UNAVAILABLE, reason CIRCUIT_OPEN, and never reaches the network. A
 * streaming call counts as answered once its response headers arrive.
 *
 * ```ts
 * const client = createClient(Catalog, transport, {
 *   interceptors: [circuitBreaker({ rule: failureRatio({ ratio: 0.5, minRequests: 20 }), openMs: 5000 })],
 * });
 * ```
 */
export function circuitBreaker(options: CircuitBreakerOptions): Interceptor {
  const settings = breakerSettings(options);
  const scope = options.scope ?? "method";
  if (scope !== "method" && scope !== "service") {
    throw new ConfigError("scope", '"method" or "service"', options.scope);
  }
  const byName = new Map<string, Breaker>();
  const byMethod = new WeakMap<MethodInfo, Breaker>();
  // the last method's breaker: a client calling one method most of the time skips the WeakMap
  let lastMethod: MethodInfo | undefined;
  let lastBreaker: Breaker | undefined;
  const breakerOf = (method: MethodInfo): Breaker => {
    if (method === lastMethod) return lastBreaker!;
    let breaker = byMethod.get(method);
    if (breaker === undefined) {
      const name = scope === "method" ? method.path : method.service.typeName;
      breaker = byName.get(name);
      if (breaker === undefined) {
        breaker = createBreaker(name, settings);
        byName.set(name, breaker);
      }
      byMethod.set(method, breaker);
    }
    lastMethod = method;
    lastBreaker = breaker;
    return breaker;
  };
  return (next) => (call) => {
    const breaker = breakerOf(call.method);
    if (!breaker.admits()) return Promise.reject(rejected(breaker, settings));
    return guarded(breaker, breaker.take(), settings, next, call);
  };
}

/** Counts a call `breaker` rejected and returns its error. */
function rejected(breaker: Breaker, settings: BreakerSettings): WeftError {
  breaker.rejected();
  if (settings.telemetry !== undefined) emit(settings.telemetry, "breaker.rejected", { name: breaker.name });
  return breaker.error();
}

/**
 * Runs a call `breaker` admitted with `permit` and tells it how the call ended: its outcome is read
 * in the handlers of one `then`, with no async frame per call.
 */
function guarded(
  breaker: Breaker,
  permit: number,
  settings: BreakerSettings,
  next: (call: Call) => Promise<CallResult>,
  call: Call,
): Promise<CallResult> {
  const now = settings.now;
  const timed = settings.timed;
  // a rule that ignores latency needs the clock once, at the end, for its window
  const start = timed ? now() : Number.NaN;
  let sent: Promise<CallResult>;
  try {
    sent = next(call);
  } catch (e) {
    sent = Promise.reject(e);
  }
  return sent.then(
    (result) => {
      const end = now();
      breaker.done(permit, false, timed ? end - start : 0, end);
      return result;
    },
    (e: unknown) => {
      const end = now();
      breaker.done(permit, outcomeOf(settings, e), timed ? end - start : 0, end);
      throw e;
    },
  );
}
