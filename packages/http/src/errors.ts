import { fromBinary, type Registry, toJson } from "@bufbuild/protobuf";
import { Code, codeName, type JsonValue, Reason, WeftError } from "@weft/core";

/**
 * Weft status code → HTTP status, the mapping grpc-gateway uses. A few gateway-level errors use a more
 * precise status than their code's (413 body too large, 415 media type, 405, 406): see `RestError`.
 */
const HTTP_STATUS: readonly number[] = [
  200, // OK
  499, // CANCELLED (client closed request)
  500, // UNKNOWN
  400, // INVALID_ARGUMENT
  504, // DEADLINE_EXCEEDED
  404, // NOT_FOUND
  409, // ALREADY_EXISTS
  403, // PERMISSION_DENIED
  429, // RESOURCE_EXHAUSTED
  400, // FAILED_PRECONDITION
  409, // ABORTED
  400, // OUT_OF_RANGE
  501, // UNIMPLEMENTED
  500, // INTERNAL
  503, // UNAVAILABLE
  500, // DATA_LOSS
  401, // UNAUTHENTICATED
];

/** The HTTP status a Weft code is answered with over REST (e.g. `NOT_FOUND` → 404). */
export function httpStatusOf(code: Code): number {
  return HTTP_STATUS[code] ?? 500;
}

/** The JSON body of every REST error response. */
export interface RestErrorBody {
  /** The Weft (gRPC) code, 0–16. */
  code: number;
  /** The code's name, e.g. `NOT_FOUND`. */
  status: string;
  /** Stable UPPER_SNAKE reason, or `""`. */
  reason: string;
  message: string;
  /** Structured details, each `{ type, value }` or `{ type, bytes }`: see `RestErrorDetail`. */
  details: RestErrorDetail[];
}

/**
 * One error detail in a REST error body. Exactly one of `value` and `bytes` is present:
 *
 * - `{ type, value }`: the detail as JSON: a JSON detail as the handler gave it, or a protobuf
 *   detail whose type the gateway's registry knows, in its proto3 JSON form;
 * - `{ type, bytes }`: binary details (protobuf of a type the registry does not know, or
 *   undecodable), standard base64.
 *
 * Weft's own wire status (`@weft/core/protocol`) names the JSON form `json` instead of `value`; the
 * REST body is for people and generic HTTP clients, and `{ type, value }` is the form they know from
 * `google.protobuf.Any` and grpc-gateway-style APIs.
 */
export type RestErrorDetail = { type: string; value: JsonValue } | { type: string; bytes: string };

/** A gateway-level error: a `WeftError` answered with a specific HTTP status and extra headers. */
export class RestError extends WeftError {
  // WeftError's `instanceof` accepts any WeftError (brand check); this one needs the real class.
  static override [Symbol.hasInstance](value: unknown): boolean {
    return Function.prototype[Symbol.hasInstance].call(RestError, value);
  }

  readonly httpStatus: number;
  readonly headers: Readonly<Record<string, string>>;

  constructor(
    httpStatus: number,
    code: Code,
    reason: string,
    message: string,
    options: { details?: WeftError["details"]; headers?: Record<string, string> } = {},
  ) {
    super(code, message, { reason, details: options.details ?? [] });
    this.httpStatus = httpStatus;
    this.headers = options.headers ?? {};
  }
}

/** A 400 naming the offending field, with a `google.rpc.BadRequest`-shaped detail. */
export function badField(
  field: string,
  description: string,
  reason: string = Reason.INVALID_FIELD,
): RestError {
  return new RestError(
    400,
    Code.INVALID_ARGUMENT,
    reason,
    `invalid value for field ${field}: ${description}`,
    {
      details: [{ type: "google.rpc.BadRequest", value: { fieldViolations: [{ field, description }] } }],
    },
  );
}

export function errorBody(error: WeftError, registry: Registry | undefined): RestErrorBody {
  return {
    code: error.code,
    status: codeName(error.code),
    reason: error.reason,
    message: error.rawMessage,
    details: error.details.map((d) => detailJson(d.type, d.value, registry)),
  };
}

function detailJson(
  type: string,
  value: Uint8Array | JsonValue,
  registry: Registry | undefined,
): RestErrorDetail {
  // `?? null`: a detail without a value reads as null, as it does over Weft's own protocol
  if (!(value instanceof Uint8Array)) return { type, value: value ?? null };
  const desc = registry?.getMessage(type);
  if (desc !== undefined) {
    try {
      return { type, value: toJson(desc, fromBinary(desc, value), { registry }) as JsonValue };
    } catch {
      // fall through: undecodable bytes travel as base64
    }
  }
  return { type, bytes: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("base64") };
}
