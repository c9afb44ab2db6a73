/*
 * When a call ends, as the metrics, the spans and the access log see it: a server call when the
 * server releases it (core's `onCallEnd`: its response sent, or the call stopped), a unary client
 * result when it settles, a stream result when its stream ends or its reader stops. One place, so all
 * three agree on the outcome.
 *
 * This runs on every call, twice per interceptor: it allocates no closure per call. A watcher is one
 * object per interceptor; what differs per call is the `tag` it is handed back (the method's
 * counters, the call's span).
 */
import {
  type Call,
  type CallEndWatcher,
  type CallHandler,
  type CallResult,
  Code,
  onCallEnd,
  type StreamResult,
  WeftError,
} from "@weft/core";

/** Told about calls: their messages as they pass (streams only) and their end, once per call. */
export interface CallWatcher<T> extends CallEndWatcher<T> {
  /**
   * Read `performance.now()` at the start and the end of a client call: `false` passes `seconds`
   * as 0 there. A server call is timed by the server either way.
   */
  readonly timed: boolean;
  /**
   * A message of the request stream passed (client: sent; server: received). Without it, the
   * request stream is not wrapped.
   */
  readonly request?: ((tag: T) => void) | undefined;
  /** A message of the response stream passed (client: received; server: sent). */
  readonly response?: ((tag: T) => void) | undefined;
}

/**
 * Runs `next(call)` and tells `watcher` how it goes, with `tag`. A server call ends when the server
 * releases it (`onCallEnd`): its response or error sent, or the call stopped (deadline,
 * cancellation, shutdown: the signal's reason) even if the handler has not noticed yet. A client
 * call ends when its result settles or its response stream ends; a stream whose reader stops early
 * ends with the signal's reason, else `CANCELLED`. The returned promise is `next`'s outcome.
 */
export function watchCall<T>(
  next: CallHandler,
  call: Call,
  watcher: CallWatcher<T>,
  tag: T,
): Promise<CallResult> {
  const request = watcher.request;
  if (call.stream && request !== undefined) call.messages = countEach(call.messages, request, tag);
  if (call.side === "server" && onCallEnd(call, watcher, tag)) {
    let result: Promise<CallResult>;
    try {
      result = next(call);
    } catch (e) {
      return Promise.reject(e);
    }
    const response = watcher.response;
    if (response === undefined || !streamsResponses(call)) return result;
    return result.then((r) => countResponses(r, response, tag));
  }
  return untilSettled(next, call, watcher, tag, watcher.timed ? performance.now() : 0);
}

/** Whether the method answers with a stream (server-streaming and bidi). */
function streamsResponses(call: Call): boolean {
  const kind = call.method.kind;
  return kind === "server_streaming" || kind === "bidi_streaming";
}

function countResponses<T>(result: CallResult, passed: (tag: T) => void, tag: T): CallResult {
  if (result.stream) (result as StreamResult).messages = countEach(result.messages, passed, tag);
  return result;
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
