import {
  type Call,
  type CallHandler,
  Code,
  ConfigError,
  type Interceptor,
  Reason,
  type Telemetry,
  type WeftError,
} from "@weft/core";
import { emit, errorWithoutStack, pause, settleWithin, telemetryOption } from "@weft/core/internal";
import type { Acquisition, Limiter } from "./limiter.ts";

/** The trailer (error metadata) carrying a refusal's retry hint, in whole milliseconds. */
export const RETRY_AFTER_MS = "retry-after-ms";

/** Options of `rateLimit`. */
export interface RateLimitOptions {
  /** The limiter deciding; its keys are what `key` returns. Required. */
  limiter: Limiter;
  /**
   * The key a call is limited under. Default: `methodKey`, the method's path (one limit per method).
   * `callerKey()` limits each caller separately; combine them for per-caller, per-method limits.
   */
  key?: (call: Call) => string;
  /** Permits a call takes. Default: 1 for every call. */
  permits?: (call: Call) => number;
  /** Told of every refusal (`ratelimit.rejected`). Default: none. */
  telemetry?: Telemetry | undefined;
}

/** The method's path, `/<service>/<method>`: one limit per method. */
export function methodKey(call: Call): string {
  return call.method.path;
}

/**
 * A key per caller: on the server the verified TLS peer (`call.peerIdentity`: the first URI subject
 * alternative name, else the common name), else the request header `header` (default
 * `x-caller-id`), else the remote address; on the client the header, else `"local"`. With
 * `perMethod`, the method's path is appended, for per-caller, per-method limits.
 */
export function callerKey(options: { header?: string; perMethod?: boolean } = {}): (call: Call) => string {
  const header = options.header ?? "x-caller-id";
  const perMethod = options.perMethod === true;
  return (call) => {
    const id = call.peerIdentity;
    const caller =
      (id !== undefined
        ? (id.subjectAltNames.find((n) => n.startsWith("URI:")) ?? id.commonName)
        : undefined) ??
      call.headers.get(header) ??
      call.peer ??
      "local";
    return perMethod ? `${caller} ${call.method.path}` : caller;
  };
}

/**
 * A rate limiter as an interceptor, on the server or the client: each call takes permits from
 * `limiter` under its key first. Refused, it fails with RESOURCE_EXHAUSTED, reason `RATE_LIMITED`,
 * and the hint `retry-after-ms` in its metadata (trailers on the wire), without running the rest of
 * the chain: on a client the call is never sent. A queueing limiter's delay is waited out before the
 * call proceeds, within the call's deadline and signal.
 *
 * ```ts
 * createServer({ interceptors: [rateLimit({ limiter: tokenBucket({ ratePerSecond: 100 }), key: callerKey() })] });
 * ```
 */
export function rateLimit(options: RateLimitOptions): Interceptor {
  const limiter = options.limiter;
  if (limiter === null || typeof limiter !== "object" || typeof limiter.tryAcquire !== "function") {
    throw new ConfigError("limiter", "a Limiter (an object with tryAcquire(key, permits))", limiter);
  }
  const keyOf = options.key ?? methodKey;
  if (typeof keyOf !== "function") throw new ConfigError("key", "a function (call) => string", keyOf);
  const permitsOf = options.permits;
  if (permitsOf !== undefined && typeof permitsOf !== "function") {
    throw new ConfigError("permits", "a function (call) => number", permitsOf);
  }
  const telemetry = telemetryOption(options.telemetry);
  return (next) => (call) => {
    const key = keyOf(call);
    const got = limiter.tryAcquire(key, permitsOf === undefined ? 1 : permitsOf(call));
    if (isPromise(got)) return got.then((a) => proceed(a, call, key, next));
    return proceed(got, call, key, next);
  };

  function proceed(a: Acquisition, call: Call, key: string, next: CallHandler) {
    if (!a.ok) {
      if (telemetry !== undefined) {
        emit(telemetry, "ratelimit.rejected", {
          side: call.side,
          method: call.method.path,
          key,
          retryAfterMs: a.retryAfterMs,
        });
      }
      return Promise.reject(rateLimited(a.retryAfterMs));
    }
    const delay = a.delayMs ?? 0;
    if (delay <= 0) return next(call);
    // core's one wait: an abort ends it (and its timer) at once; the deadline is settleWithin's
    return settleWithin(pause(delay, call.signal), call.signal, call.deadline).then(() => next(call));
  }
}

/** The error of a refused call: RESOURCE_EXHAUSTED, `RATE_LIMITED`, `retry-after-ms` in its metadata. */
export function rateLimited(retryAfterMs: number): WeftError {
  // without a stack: refusals come in bulk under overload (`errorWithoutStack`)
  return errorWithoutStack(Code.RESOURCE_EXHAUSTED, `rate limited; retry after ${retryAfterMs} ms`, {
    reason: Reason.RATE_LIMITED,
    metadata: { [RETRY_AFTER_MS]: String(retryAfterMs) },
  });
}

function isPromise(v: Acquisition | Promise<Acquisition>): v is Promise<Acquisition> {
  return typeof (v as Promise<Acquisition>).then === "function";
}
