import { Code, Reason, WeftError } from "@weft/core";

/**
 * The error of every failed broker operation: `UNAVAILABLE`/`BROKER_UNAVAILABLE`, naming the broker,
 * what it was doing and the destination.
 */
export function unavailable(action: string, destination: string | undefined, cause: unknown): WeftError {
  const why = cause instanceof Error ? cause.message : String(cause);
  const where = destination === undefined ? "" : ` "${destination}"`;
  return new WeftError(Code.UNAVAILABLE, `redis broker: cannot ${action}${where}: ${why}`, {
    reason: Reason.BROKER_UNAVAILABLE,
    cause,
  });
}
