/*
 * Where an error came from, as the server door needs to know it: a `WeftError` that a client call
 * of this process produced (the handler called another service and did not catch) is a downstream
 * error, and the door relays it without the downstream's metadata and details unless the server
 * forwards errors whole (`createServer({ errors: "forward" })`).
 */
import { WeftError } from "./weft-error.ts";

/** Set, non-enumerable, on every error a client call rejects with (`Symbol.for`: one across installs). */
const kFromCall: unique symbol = Symbol.for("@weft/core/fromClientCall");

/**
 * Trailer key of an error relayed from downstream: `"1"` when the server that answered did not fail
 * itself but passed on the failure of a call it made. Retry policies do not retry such errors (the
 * hop that made the failing call had its own chance to).
 */
export const DOWNSTREAM_KEY = "weft-downstream";

/** Marks `error` as produced by a client call (a no-op for anything but a `WeftError`); returns it. */
export function markFromCall<E>(error: E): E {
  if (error instanceof WeftError && !(kFromCall in error)) {
    Object.defineProperty(error, kFromCall, { value: true, enumerable: false });
  }
  return error;
}

/** True when `error` was produced by a client call of this process (`markFromCall`). */
export function isFromCall(error: unknown): boolean {
  return error instanceof WeftError && kFromCall in error;
}

/** True when `error` is a server's relay of a downstream failure (its trailers say `weft-downstream: 1`). */
export function isDownstreamError(error: unknown): boolean {
  return error instanceof WeftError && error.metadata.get(DOWNSTREAM_KEY) === "1";
}

/**
 * What a server sends for a downstream error in `relay` mode: the code, reason and message, none of
 * the downstream's metadata and details, and `weft-downstream: 1`.
 */
export function relayedError(error: WeftError): WeftError {
  return new WeftError(error.code, error.rawMessage, {
    reason: error.reason,
    metadata: { [DOWNSTREAM_KEY]: "1" },
  });
}
