/*
 * Fallbacks (client side: an answer when a call fails) and degradation (server side: a simpler
 * handler served while a switch is on).
 */
import {
  type Call,
  Code,
  ConfigError,
  type Interceptor,
  Metadata,
  type MethodInfo,
  type Telemetry,
  type UnaryResult,
  WeftError,
} from "@weft/core";
import { emit, isNodeFailure, telemetryOption } from "@weft/core/internal";

/** Options of `fallback`: exactly one of `value` and `fn`. */
export interface FallbackOptions<O = unknown> {
  /** The response message to answer with. */
  value?: O;
  /** Makes the response message from the call and its error; may throw to fail the call after all. */
  fn?: (call: Call, error: unknown) => O | Promise<O>;
  /**
   * Which errors the fallback answers. Default: the call failed for want of a healthy dependency —
   * UNAVAILABLE (a breaker's CIRCUIT_OPEN included), RESOURCE_EXHAUSTED (a limiter's RATE_LIMITED
   * included), DEADLINE_EXCEEDED (a timeout), INTERNAL, UNKNOWN, DATA_LOSS, or an error that is not a
   * `WeftError`. Never a cancellation, nor an application's answer such as NOT_FOUND.
   */
  when?: (error: unknown) => boolean;
  /**
   * The methods it applies to, by wire path (`/pkg.Svc/Method`) or name (`Method`). Default every
   * method whose response is one message (unary and client-streaming); streamed responses are
   * never answered by a fallback.
   */
  methods?: readonly string[];
  /** Receives a `fallback.used` event each time it answers. Default none. */
  telemetry?: Telemetry;
}

/**
 * A client interceptor answering a failed call with a fallback instead of its error: a static
 * `value` or `fn(call, error)`. Put it outermost, so that it sees what the breakers, limiters and
 * timeouts inside it reject:
 *
 * ```ts
 * createClient(Catalog, transport, {
 *   interceptors: [fallback({ methods: ["Lookup"], value: { items: [] } }), circuitBreaker({ rule })],
 * });
 * ```
 */
export function fallback<O>(options: FallbackOptions<O>): Interceptor {
  if (typeof options !== "object" || options === null) throw new ConfigError("options", "an object", options);
  const hasValue = Object.hasOwn(options, "value");
  const fn = options.fn;
  if (hasValue === (fn !== undefined)) throw new ConfigError("value", "exactly one of value and fn", options);
  if (fn !== undefined && typeof fn !== "function")
    throw new ConfigError("fn", "a function (call, error)", fn);
  const when = options.when ?? isNodeFailure;
  if (typeof when !== "function") throw new ConfigError("when", "a function (error) => boolean", when);
  const methods = options.methods;
  if (methods !== undefined && (!Array.isArray(methods) || methods.some((m) => typeof m !== "string"))) {
    throw new ConfigError("methods", "an array of method paths or names", methods);
  }
  const telemetry = telemetryOption(options.telemetry);
  const applies = new WeakMap<MethodInfo, boolean>();
  const appliesTo = (method: MethodInfo): boolean => {
    let yes = applies.get(method);
    if (yes === undefined) {
      const single = method.kind === "unary" || method.kind === "client_streaming";
      yes = single && (methods === undefined || methodMatches(methods, method));
      applies.set(method, yes);
    }
    return yes;
  };
  return (next) => (call) => {
    if (!appliesTo(call.method)) return next(call);
    return next(call).catch(async (error: unknown) => {
      if (!when(error)) throw error;
      const message = fn === undefined ? options.value : await fn(call, error);
      if (telemetry !== undefined) {
        const e = error instanceof WeftError ? error : undefined;
        emit(telemetry, "fallback.used", {
          method: call.method.path,
          code: e?.code ?? Code.UNKNOWN,
          reason: e?.reason ?? "",
        });
      }
      return unaryResult(message);
    });
  };
}

/** True when `method` is in `names` (by path, or by its name as the wire or the definition spells it). */
export function methodMatches(names: readonly string[], method: MethodInfo): boolean {
  const bare = method.path.slice(method.path.lastIndexOf("/") + 1);
  return names.includes(method.path) || names.includes(bare) || names.includes(method.name);
}

function unaryResult<O>(message: O): UnaryResult<O> {
  return { stream: false, headers: new Metadata(), message, trailers: new Metadata() };
}

/** A switch settable at run time. */
export interface DegradationSwitch {
  /** Serve the degraded handlers from now on. */
  on(): void;
  /** Serve the full handlers again. */
  off(): void;
  /** True while on. */
  readonly isOn: boolean;
}

/** A switch, off to begin with; one can drive several `degradable` interceptors. */
export function degradationSwitch(): DegradationSwitch {
  let on = false;
  return {
    on() {
      on = true;
    },
    off() {
      on = false;
    },
    get isOn() {
      return on;
    },
  };
}

/** A simpler handler of a unary method: its response from the request alone. */
// biome-ignore lint/suspicious/noExplicitAny: handlers of every message type share one record
export type DegradedHandler = (request: any, call: Call) => unknown;

/** Options of `degradable`. */
export interface DegradableOptions {
  /**
   * The simpler handler of each unary method it degrades, keyed by wire path (`/pkg.Svc/Method`) or
   * name (`Method`). Other methods are served as usual, switch on or off.
   */
  handlers: Readonly<Record<string, DegradedHandler>>;
  /** The switch to follow. Default a new one, off (the interceptor's `switch`). */
  switch?: DegradationSwitch;
}

/** A server interceptor with its degradation switch. */
export interface Degradable extends Interceptor {
  /** While on, the degraded handlers answer their methods instead of the registered ones. */
  readonly switch: DegradationSwitch;
}

/**
 * A server interceptor that, while its switch is on, answers the methods in `handlers` with their
 * simpler handler instead of the registered one (which does not run):
 *
 * ```ts
 * const degraded = degradable({ handlers: { Recommend: () => ({ items: POPULAR }) } });
 * const server = createServer({ interceptors: [degraded] });
 * degraded.switch.on(); // under load: serve the cached list
 * ```
 */
export function degradable(options: DegradableOptions): Degradable {
  const handlers = options?.handlers;
  if (typeof handlers !== "object" || handlers === null) {
    throw new ConfigError("handlers", "an object of handlers keyed by method path or name", handlers);
  }
  for (const [key, handler] of Object.entries(handlers)) {
    if (typeof handler !== "function")
      throw new ConfigError(`handlers.${key}`, "a function (request, call)", handler);
  }
  const toggle = options.switch ?? degradationSwitch();
  const resolved = new WeakMap<MethodInfo, DegradedHandler | null>();
  const handlerOf = (method: MethodInfo): DegradedHandler | null => {
    let handler = resolved.get(method);
    if (handler === undefined) {
      const bare = method.path.slice(method.path.lastIndexOf("/") + 1);
      handler =
        method.kind !== "unary"
          ? null
          : (ownKey(handlers, method.path) ??
            ownKey(handlers, bare) ??
            ownKey(handlers, method.name) ??
            null);
      resolved.set(method, handler);
    }
    return handler;
  };
  const interceptor: Interceptor = (next) => async (call) => {
    if (!toggle.isOn || call.stream) return next(call);
    const handler = handlerOf(call.method);
    if (handler === null) return next(call);
    return unaryResult(await handler(call.message, call));
  };
  return Object.assign(interceptor, { switch: toggle });
}

function ownKey<T>(record: Readonly<Record<string, T>>, key: string): T | undefined {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}
