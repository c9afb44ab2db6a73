import { Metadata } from "../metadata/metadata.ts";
import { Code, codeName, isCode } from "./code.ts";

/**
 * One piece of structured error information. `type` names its schema (a protobuf type name such as
 * `google.rpc.BadRequest`, or any name the service documents); `value` is either the encoded bytes
 * (for protobuf details, which cross to gRPC as `google.protobuf.Any`) or a JSON value.
 */
export interface ErrorDetail {
  readonly type: string;
  readonly value: Uint8Array | JsonValue;
}

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export interface WeftErrorOptions {
  /** A stable UPPER_SNAKE reason, e.g. `FRAME_TOO_LARGE`, `ORDER_NOT_FOUND`. Retry logic reads `code` and `reason`, never `message`. */
  reason?: string;
  metadata?: Metadata | Record<string, string>;
  details?: readonly ErrorDetail[];
  cause?: unknown;
}

const brand = Symbol.for("@weft/core/WeftError");

/**
 * The one error type of Weft. It crosses the wire with code, reason, message, metadata and details
 * intact. `instanceof` works across duplicate installs of `@weft/core` (the check uses a global
 * symbol brand, not the class identity).
 */
export class WeftError extends Error {
  override name = "WeftError";
  readonly code: Code;
  readonly reason: string;
  readonly metadata: Metadata;
  readonly details: readonly ErrorDetail[];
  /** The message without the `[CODE]` prefix that `message` carries. */
  readonly rawMessage: string;

  constructor(code: Code, message: string, options: WeftErrorOptions = {}) {
    super(message.length > 0 ? `[${codeName(code)}] ${message}` : `[${codeName(code)}]`, {
      cause: options.cause,
    });
    this.code = code;
    this.rawMessage = message;
    this.reason = options.reason ?? "";
    this.metadata =
      options.metadata instanceof Metadata ? options.metadata : new Metadata(options.metadata ?? {});
    this.details = options.details ?? [];
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === "object" && value !== null && (value as { [brand]?: true })[brand] === true;
  }

  /**
   * Turns anything thrown into a WeftError. A WeftError is returned as is; an AbortError becomes
   * CANCELLED; anything else becomes `fallback` (INTERNAL by default) with the original as `cause`.
   */
  static from(reason: unknown, fallback: Code = Code.INTERNAL): WeftError {
    if (reason instanceof WeftError) return reason;
    if (reason instanceof Error) {
      if (reason.name === "AbortError")
        return new WeftError(Code.CANCELLED, reason.message, { cause: reason });
      if (reason.name === "TimeoutError")
        return new WeftError(Code.DEADLINE_EXCEEDED, reason.message, { cause: reason });
      return new WeftError(fallback, reason.message, { cause: reason });
    }
    return new WeftError(fallback, String(reason), { cause: reason });
  }

  /** Builds an error from a code read off the wire, where the number may be out of range. */
  static fromWire(code: number, message: string, options: WeftErrorOptions = {}): WeftError {
    return new WeftError(isCode(code) ? code : Code.UNKNOWN, message, options);
  }
}
Object.defineProperty(WeftError.prototype, brand, { value: true });

/**
 * A `WeftError` built without capturing a stack, for the errors a process makes in bulk exactly when
 * it is overloaded or flooded: a passed deadline, a breaker's or a limiter's refusal, a shed call, a
 * server's refusal of a request (unknown method, shutting down, a bad `:timeout`) and a client's
 * CANCEL. Their stack names only the timer, the policy or the frame handler that made them, and
 * capturing one costs several microseconds (about as much as a whole unary call over TCP), which
 * would make each refusal dearer than the call it spares and keep an overloaded process overloaded.
 */
export function errorWithoutStack(code: Code, message: string, options?: WeftErrorOptions): WeftError {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return new WeftError(code, message, options);
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/** A configuration error: bad options at construction time. Thrown synchronously, names the option. */
export class ConfigError extends TypeError {
  override name = "ConfigError";
  readonly option: string;
  constructor(option: string, expected: string, got: unknown) {
    super(`invalid option "${option}": expected ${expected}, got ${describe(got)}`);
    this.option = option;
  }
}

function describe(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(v);
  if (typeof v === "number" || typeof v === "boolean" || v == null) return String(v);
  return typeof v;
}
