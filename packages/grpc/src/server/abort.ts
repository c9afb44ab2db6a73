/**
 * How the protocol front-ends (gRPC, Connect) end a call as soon as its Weft signal aborts: at the
 * deadline, when the client went away, or when shutdown gives up on it. Listeners are removed when
 * the call ends, so a long-lived signal never collects them.
 */

/** Something told once a signal aborts. An object (not a closure), so a call can be its own watcher. */
export interface AbortWatcher {
  handleEvent(): void;
}

const ONCE = Object.freeze({ once: true });

/** Calls `watcher.handleEvent()` once `signal` aborts; at once if it has already. Undo with `unwatchAbort`. */
export function watchAbort(signal: AbortSignal, watcher: AbortWatcher): void {
  if (signal.aborted) watcher.handleEvent();
  else signal.addEventListener("abort", watcher, ONCE);
}

export function unwatchAbort(signal: AbortSignal, watcher: AbortWatcher): void {
  signal.removeEventListener("abort", watcher);
}

/** Settles with `promise`, or rejects with the signal's reason as soon as it aborts. */
export function raceAbort<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    promise.then(undefined, ignore); // settles later, unobserved: no unhandled rejection
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const watcher: AbortWatcher = { handleEvent: () => reject(signal.reason) };
    signal.addEventListener("abort", watcher, ONCE);
    promise.then(
      (v) => {
        unwatchAbort(signal, watcher);
        resolve(v);
      },
      (e: unknown) => {
        unwatchAbort(signal, watcher);
        reject(e);
      },
    );
  });
}

function ignore(): void {}
