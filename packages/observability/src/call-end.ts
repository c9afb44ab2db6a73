/*
 * When a call ends, as the metrics, the spans and the access log see it: a unary result when it
 * settles, a stream result when its stream ends or its reader stops, a server call when the door
 * stops it. One place, so all three agree on the outcome.
 *
 * This runs on every call, twice per interceptor: it allocates no closure per call. A watcher is one
 * object per interceptor; what differs per call is the `tag` it is handed back (the method's
 * counters, the call's span).
 */
import { type Call, type CallHandler, type CallResult, Code, WeftError } from "@weft/core";
import { type AbortWatcher, abortError, NEVER, unwatchAbort, watchAbort } from "@weft/core/internal";

/** Told about calls: their messages as they pass (streams only) and their end, once per call. */
export interface CallWatcher<T> {
  /** Read `performance.now()` at the start and the end: `false` passes `seconds` as 0. */
  readonly timed: boolean;
  /**
   * A message of the request stream passed (client: sent; server: received). Without it, the
   * request stream is not wrapped.
   */
  readonly request?: ((tag: T) => void) | undefined;
  /** A message of the response stream passed (client: received; server: sent). */
  readonly response?: ((tag: T) => void) | undefined;
  /**
   * The call ended: `error` is `undefined` for success (also for a one-way call once sent), else
   * what the call failed with, `seconds` after it entered the interceptor.
   */
  end(tag: T, call: Call, error: unknown, seconds: number): void;
}

/**
 * Runs `next(call)` and tells `watcher` how it goes, with `tag`. A server call ends when the door
 * stops it (deadline, cancellation, shutdown: the signal's reason) even if the handler has not
 * noticed yet; a stream whose reader stops early ends with the signal's reason, else `CANCELLED`.
 * The returned promise is `next`'s outcome, settled when `next`'s is.
 */
export function watchCall<T>(
  next: CallHandler,
  call: Call,
  watcher: CallWatcher<T>,
  tag: T,
): Promise<CallResult> {
  const start = watcher.timed ? performance.now() : 0;
  const request = watcher.request;
  if (call.stream && request !== undefined) call.messages = countEach(call.messages, request, tag);
  if (call.side === "server" && call.signal !== NEVER) {
    return untilStopped(next, call, new ServerCallEnd(watcher, tag, call, start));
  }
  return untilSettled(next, call, watcher, tag, start);
}

async function untilSettled<T>(
  next: CallHandler,
  call: Call,
  watcher: CallWatcher<T>,
  tag: T,
  start: number,
): Promise<CallResult> {
  let result: CallResult;
  try {
    result = await next(call);
  } catch (e) {
    watcher.end(tag, call, e, since(watcher, start));
    throw e;
  }
  if (!result.stream) watcher.end(tag, call, undefined, since(watcher, start));
  else result.messages = endWithStream(result.messages, call, watcher, tag, start);
  return result;
}

/** A server call being watched: ends once, when its result settles or its signal aborts. */
class ServerCallEnd<T> implements AbortWatcher {
  readonly watcher: CallWatcher<T>;
  readonly tag: T;
  readonly call: Call;
  readonly start: number;
  #ended = false;

  constructor(watcher: CallWatcher<T>, tag: T, call: Call, start: number) {
    this.watcher = watcher;
    this.tag = tag;
    this.call = call;
    this.start = start;
  }

  /** The door stopped the call (or the caller went away) before the handler answered. */
  handleEvent(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.watcher.end(this.tag, this.call, abortError(this.call.signal), since(this.watcher, this.start));
  }

  /** The handler answered: true unless the call had already ended. */
  settle(): boolean {
    if (this.#ended) return false;
    this.#ended = true;
    unwatchAbort(this.call.signal, this);
    return true;
  }
}

async function untilStopped<T>(next: CallHandler, call: Call, end: ServerCallEnd<T>): Promise<CallResult> {
  watchAbort(call.signal, end);
  const { watcher, tag, start } = end;
  let result: CallResult;
  try {
    result = await next(call);
  } catch (e) {
    if (end.settle()) watcher.end(tag, call, e, since(watcher, start));
    throw e;
  }
  if (!end.settle()) return result;
  if (!result.stream) watcher.end(tag, call, undefined, since(watcher, start));
  else result.messages = endWithStream(result.messages, call, watcher, tag, start);
  return result;
}

async function* countEach<T>(
  messages: AsyncIterable<unknown>,
  passed: (tag: T) => void,
  tag: T,
): AsyncGenerator<unknown> {
  for await (const message of messages) {
    passed(tag);
    yield message;
  }
}

async function* endWithStream<T>(
  messages: AsyncIterable<unknown>,
  call: Call,
  watcher: CallWatcher<T>,
  tag: T,
  start: number,
): AsyncGenerator<unknown> {
  const response = watcher.response;
  let ended = false;
  try {
    for await (const message of messages) {
      response?.(tag);
      yield message;
    }
    ended = true;
    watcher.end(tag, call, undefined, since(watcher, start));
  } catch (e) {
    ended = true;
    watcher.end(tag, call, e, since(watcher, start));
    throw e;
  } finally {
    // the reader stopped early (client: `break`; server: the call was cancelled or timed out)
    if (!ended) watcher.end(tag, call, stopReason(call.signal), since(watcher, start));
  }
}

/** Why a call stopped: its signal's reason when it is a `WeftError`, else `CANCELLED`. */
function stopReason(signal: AbortSignal): WeftError {
  const reason: unknown = signal.aborted ? signal.reason : undefined;
  return reason instanceof WeftError ? reason : new WeftError(Code.CANCELLED, "the stream was abandoned");
}

/** The status code a call ended with: `OK` for success. */
export function endCode(error: unknown): Code {
  return error === undefined ? Code.OK : WeftError.from(error).code;
}

function since(watcher: { readonly timed: boolean }, start: number): number {
  return watcher.timed ? (performance.now() - start) / 1000 : 0;
}
