/*
 * Timeouts: a default budget per client, per service and per method, never beyond the deadline the
 * call already has (inherited from the handler it is made in, or set by the caller).
 */
import { ConfigError, type Interceptor } from "@weft/core";
import { deadlineExceeded, earlierDeadline } from "@weft/core/internal";
import { MethodSettings, type PerMethod } from "./per-method.ts";

/** Options of `timeout`. */
export interface TimeoutOptions {
  /** Budget of every call, in milliseconds (a positive number). */
  readonly ms: number;
  /**
   * Budgets in milliseconds per service (`"catalog.v1.Catalog"`) or per method
   * (`"catalog.v1.Catalog/lookup"`); the method's wins over its service's, both over `ms`.
   */
  readonly perMethod?: PerMethod<number>;
}

/**
 * Gives every call a budget: its deadline becomes the earlier of the one it has (the caller's, or
 * the one inherited from the handler the call is made in) and `now + ms`. The smaller always wins,
 * so a timeout never extends a call.
 *
 * On a client, a call whose budget is already spent fails here with `DEADLINE_EXCEEDED` (reason
 * `DEADLINE_EXCEEDED`) and is never sent. On a server (`createServer({ interceptors })`), it
 * shortens the deadline of the call being handled: the handler's signal aborts at the new deadline
 * and its own outgoing calls inherit it.
 *
 * ```ts
 * createClient(Catalog, transport, {
 *   interceptors: [timeout({ ms: 1_000, perMethod: { "catalog.v1.Catalog/search": 3_000 } })],
 * });
 * ```
 */
export function timeout(options: TimeoutOptions): Interceptor {
  checkBudget("ms", options?.ms);
  const perMethod = options.perMethod;
  if (perMethod !== undefined) {
    if (perMethod === null || typeof perMethod !== "object") {
      throw new ConfigError("perMethod", "an object of budgets in milliseconds", perMethod);
    }
    for (const key of Object.keys(perMethod)) checkBudget(`perMethod["${key}"]`, perMethod[key]);
  }
  const budgets = new MethodSettings(options.ms, perMethod);
  return (next) => (call) => {
    const now = Date.now();
    const deadline = earlierDeadline(call.deadline, now + budgets.of(call.method))!;
    call.deadline = deadline;
    // spent: isSpent's test, on the clock read above
    if (call.side === "client" && deadline <= now) return Promise.reject(deadlineExceeded(deadline));
    return next(call);
  };
}

function checkBudget(option: string, value: unknown): void {
  if (typeof value !== "number" || !(value > 0) || !Number.isFinite(value)) {
    throw new ConfigError(option, "a positive finite number of milliseconds", value);
  }
}
