/*
 * Exponential backoff with jitter, once for everything that waits before trying again (a node's
 * reconnects, a cluster's background resends), and the reconnect state of a node built on it.
 */
import { Code } from "../errors/code.ts";
import { Reason } from "../errors/reason.ts";
import { ConfigError, WeftError } from "../errors/weft-error.ts";

/** The delays of a backoff, in milliseconds. */
export interface BackoffOptions {
  /** The wait after the first failure. */
  readonly initialDelayMs: number;
  /** The longest wait before jitter; the doubling stops there. */
  readonly maxDelayMs: number;
}

/**
 * The wait after the `failures`-th failure in a row (1 for the first): `initialDelayMs` doubled per
 * failure, capped at `maxDelayMs`, then spread by ±20% jitter (`random` returns a number in [0, 1);
 * 0.5 gives the delay without jitter).
 */
export function backoffDelay(
  failures: number,
  options: BackoffOptions,
  random: () => number = Math.random,
): number {
  const delay = Math.min(options.maxDelayMs, options.initialDelayMs * 2 ** (failures - 1));
  return delay * (0.8 + random() * 0.4);
}

/** The reconnect delays nodes use unless told otherwise: 100 ms doubling to 10 s. */
export const RECONNECT_DEFAULTS: BackoffOptions = { initialDelayMs: 100, maxDelayMs: 10_000 };

/**
 * The `reconnect` option of a transport, checked: `{ initialDelayMs?, maxDelayMs? }` in milliseconds
 * (defaults 100 / 10,000; a maximum below the initial delay is raised to it). Throws `ConfigError`
 * naming `reconnect.…`.
 */
export function reconnectOptions(value: Partial<BackoffOptions> | undefined): BackoffOptions {
  if (value === undefined) return RECONNECT_DEFAULTS;
  if (typeof value !== "object" || value === null)
    throw new ConfigError("reconnect", "{ initialDelayMs?, maxDelayMs? }", value);
  const ms = (name: keyof BackoffOptions): number => {
    const v = value[name] ?? RECONNECT_DEFAULTS[name];
    if (typeof v !== "number" || !Number.isFinite(v) || v < 0)
      throw new ConfigError(`reconnect.${name}`, "milliseconds ≥ 0", v);
    return v;
  };
  const initialDelayMs = ms("initialDelayMs");
  return { initialDelayMs, maxDelayMs: Math.max(initialDelayMs, ms("maxDelayMs")) };
}

/**
 * The reconnect state of one node: after each failed connection attempt in a row it waits
 * `backoffDelay(failures)`, during which connecting fails at once with the last error; a connection
 * that opens resets it. `TcpNode` and `@weft/grpc`'s `GrpcNode` both keep one.
 */
export class ReconnectBackoff {
  readonly #options: BackoffOptions;
  #failures = 0;
  #retryAt = 0;
  #lastError: WeftError | undefined;

  constructor(options: BackoffOptions) {
    this.#options = options;
  }

  /** True while waiting out the delay after a failed attempt. */
  get waiting(): boolean {
    return Date.now() < this.#retryAt;
  }

  /**
   * An attempt to connect to `address` failed with `cause`: starts the wait and returns the error to
   * report, `UNAVAILABLE`/`CONNECTION_FAILED`.
   */
  failed(address: string, cause: Error): WeftError {
    this.#failures++;
    this.#retryAt = Date.now() + backoffDelay(this.#failures, this.#options);
    this.#lastError = new WeftError(Code.UNAVAILABLE, `cannot connect to ${address}: ${cause.message}`, {
      reason: Reason.CONNECTION_FAILED,
      cause,
    });
    return this.#lastError;
  }

  /** A connection opened: the next failure waits the initial delay again. */
  succeeded(): void {
    this.#failures = 0;
    this.#retryAt = 0;
  }

  /** Why connecting to `address` fails now, while `waiting`: `UNAVAILABLE`/`CONNECTION_FAILED`. */
  refusal(address: string): WeftError {
    return new WeftError(
      Code.UNAVAILABLE,
      `${address} is unreachable; next attempt in ${Math.max(0, Math.ceil(this.#retryAt - Date.now()))} ms`,
      { reason: Reason.CONNECTION_FAILED, cause: this.#lastError },
    );
  }
}
