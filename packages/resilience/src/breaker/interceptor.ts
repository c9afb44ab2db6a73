import { type Call, type CallResult, ConfigError, type Interceptor, type MethodInfo } from "@weft/core";
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
  const breakerOf = (method: MethodInfo): Breaker => {
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
    return breaker;
  };
  return (next) => (call) => guarded(breakerOf(call.method), settings, next, call);
}

async function guarded(
  breaker: Breaker,
  settings: BreakerSettings,
  next: (call: Call) => Promise<CallResult>,
  call: Call,
): Promise<CallResult> {
  if (!breaker.admits()) {
    breaker.rejected();
    if (settings.telemetry !== undefined)
      emit(settings.telemetry, "breaker.rejected", { name: breaker.name });
    throw breaker.error();
  }
  breaker.take();
  const start = settings.now();
  try {
    const result = await next(call);
    breaker.done(false, settings.now() - start);
    return result;
  } catch (e) {
    breaker.done(outcomeOf(settings, e), settings.now() - start);
    throw e;
  }
}
