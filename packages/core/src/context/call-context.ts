import { AsyncLocalStorage } from "node:async_hooks";
import type { Metadata } from "../metadata/metadata.ts";

/**
 * What a server handler's outgoing calls inherit without being passed anything: the deadline and
 * the metadata marked for propagation (trace context, routing tags). It rides on AsyncLocalStorage,
 * so it follows `await`, timers and callbacks started inside the handler.
 */
export interface CallContext {
  /**
   * Absolute deadline in `Date.now()` milliseconds, or `undefined` for none. A server interceptor
   * that shortens its call's `deadline` shortens this one too.
   */
  readonly deadline: number | undefined;
  /** The inbound call's signal: aborted when it is cancelled or its deadline passes. */
  readonly signal: AbortSignal;
  /** Metadata that outgoing calls copy into their request headers. */
  readonly propagate: Metadata;
  /** Path of the inbound call, e.g. `/catalog.v1.Catalog/lookup`. */
  readonly path: string;
  /**
   * Every header of the inbound call, propagated or not: what a client policy reads about the call
   * it runs inside (e.g. a retry policy seeing `weft-retried`, which is never propagated as such).
   */
  readonly requestHeaders: Metadata;
}

const storage = new AsyncLocalStorage<CallContext>();

/** The context of the call being handled, if any. */
export function currentCallContext(): CallContext | undefined {
  return storage.getStore();
}

/** Runs `fn` (with `arg`, if given: saves a closure per call) with `context` as the current call context. */
export function runWithCallContext<T>(context: CallContext, fn: () => T): T;
export function runWithCallContext<A, T>(context: CallContext, fn: (arg: A) => T, arg: A): T;
export function runWithCallContext<A, T>(context: CallContext, fn: (arg?: A) => T, arg?: A): T {
  return storage.run(context, fn, arg);
}

/**
 * Runs `fn` with no current call context, whatever the caller's: for work that outlives the call it
 * starts from (a message handed to a subscriber, a background stream), so it inherits neither the
 * call's deadline nor its cancellation.
 */
export function runOutsideCallContext<T>(fn: () => T): T {
  return storage.exit(fn);
}

/** Header keys propagated by default: W3C trace context and baggage. */
export const DEFAULT_PROPAGATED_HEADERS: readonly string[] = ["traceparent", "tracestate", "baggage"];
/** Any header starting with this prefix is propagated too (e.g. `weft-ctx-tags`, `weft-ctx-stress`). */
export const PROPAGATED_PREFIX = "weft-ctx-";

/** True when an inbound header should follow the call into outgoing calls. */
export function isPropagated(key: string, extra: ReadonlySet<string>): boolean {
  return key.startsWith(PROPAGATED_PREFIX) || extra.has(key) || DEFAULT_PROPAGATED_HEADERS.includes(key);
}
