/*
 * When a call ends, as the metrics and the access log see it: a unary result when it settles, a
 * stream result when its stream ends or its reader stops. One place, so both agree on the outcome.
 */
import { type Call, type CallHandler, type CallResult, Code, WeftError } from "@weft/core";
import { settleWithin } from "@weft/core/internal";

/** Told about one call: its messages as they pass (streams only) and its end, once. */
export interface CallWatcher {
  /** A message of the request stream passed (client: sent; server: received). */
  request(): void;
  /** A message of the response stream passed (client: received; server: sent). */
  response(): void;
  /**
   * The call ended with `code` (`OK` for success, also for a one-way call once sent), `seconds`
   * after it entered the interceptor.
   */
  end(code: Code, seconds: number): void;
}

/**
 * Runs `next(call)` and tells `watcher` how it goes. A server call ends when the door stops it
 * (deadline, cancellation, shutdown) even if the handler has not noticed yet; a stream whose reader
 * stops early ends with the signal's reason, else `CANCELLED`.
 */
export function watchCall(next: CallHandler, call: Call, watcher: CallWatcher): Promise<CallResult> {
  const start = performance.now();
  if (call.stream) call.messages = countEach(call.messages, watcher, false);
  let pending: Promise<CallResult>;
  try {
    pending = next(call);
  } catch (e) {
    pending = Promise.reject(e);
  }
  if (call.side === "server") pending = settleWithin(pending, call.signal, undefined);
  return pending.then(
    (result) => {
      if (!result.stream) watcher.end(Code.OK, since(start));
      else result.messages = endWithStream(result.messages, call, watcher, start);
      return result;
    },
    (error: unknown) => {
      watcher.end(WeftError.from(error).code, since(start));
      throw error;
    },
  );
}

async function* countEach(
  messages: AsyncIterable<unknown>,
  watcher: CallWatcher,
  response: boolean,
): AsyncGenerator<unknown> {
  for await (const message of messages) {
    if (response) watcher.response();
    else watcher.request();
    yield message;
  }
}

async function* endWithStream(
  messages: AsyncIterable<unknown>,
  call: Call,
  watcher: CallWatcher,
  start: number,
): AsyncGenerator<unknown> {
  let code: Code | undefined;
  try {
    for await (const message of messages) {
      watcher.response();
      yield message;
    }
    code = Code.OK;
  } catch (e) {
    code = WeftError.from(e).code;
    throw e;
  } finally {
    // the reader stopped early (client: `break`; server: the call was cancelled or timed out)
    if (code === undefined) {
      const reason = call.signal.aborted ? call.signal.reason : undefined;
      code = reason instanceof WeftError ? reason.code : Code.CANCELLED;
    }
    watcher.end(code, since(start));
  }
}

function since(start: number): number {
  return (performance.now() - start) / 1000;
}
