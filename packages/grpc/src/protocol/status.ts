import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { Code, type ErrorDetail, type JsonValue, type Metadata, WeftError } from "@weft/core";

/**
 * How a `WeftError` crosses gRPC (and gRPC-web, Connect):
 *
 * - `code` is the gRPC status (`grpc-status`), the same number.
 * - `rawMessage` is `grpc-message`, percent-encoded.
 * - `reason` travels as a `google.rpc.ErrorInfo { reason, domain: "weft" }` detail, the standard
 *   gRPC place for a stable machine-readable reason.
 * - details whose value is protobuf bytes are `google.protobuf.Any`s (`type.googleapis.com/<type>`)
 *   in a `google.rpc.Status`, sent base64 in `grpc-status-details-bin`.
 * - details whose value is JSON have no protobuf form: they go in the `weft-error-details-bin`
 *   trailer, base64 of the UTF-8 JSON array `[{"type": …, "json": …}]`, each entry in the form
 *   Weft's own protocol gives a JSON detail in its status (`{"type": …, "json": …}`).
 * - `metadata` are trailers.
 */
export const ERROR_INFO_TYPE = "google.rpc.ErrorInfo";
/** The `ErrorInfo.domain` that marks the detail carrying a `WeftError`'s reason. */
export const WEFT_DOMAIN = "weft";
export const JSON_DETAILS_KEY = "weft-error-details-bin";
const TYPE_URL_PREFIX = "type.googleapis.com/";

// ---------------------------------------------------------------------------------------------------
// grpc-message

/**
 * Percent-encodes a status message as the gRPC spec asks: UTF-8, with every byte outside
 * 0x20–0x7E, and `%` itself, written as `%XX`.
 */
export function encodeGrpcMessage(message: string): string {
  let plain = true;
  for (let i = 0; i < message.length; i++) {
    const c = message.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x25) {
      plain = false;
      break;
    }
  }
  if (plain) return message;
  let out = "";
  for (const byte of Buffer.from(message, "utf8")) {
    if (byte >= 0x20 && byte <= 0x7e && byte !== 0x25) out += String.fromCharCode(byte);
    else out += `%${byte < 16 ? "0" : ""}${byte.toString(16).toUpperCase()}`;
  }
  return out;
}

const HEX2 = /^[0-9a-fA-F]{2}$/;

/** Decodes a `grpc-message`; malformed escapes are kept as they are, as the spec asks. */
export function decodeGrpcMessage(value: string): string {
  if (!value.includes("%")) return value;
  const bytes: number[] = [];
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0x25 && i + 2 < value.length && HEX2.test(value.slice(i + 1, i + 3))) {
      bytes.push(Number.parseInt(value.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      // header values arrive as latin1: one character per byte
      bytes.push(c & 0xff);
    }
  }
  return Buffer.from(bytes).toString("utf8");
}

// ---------------------------------------------------------------------------------------------------
// grpc-timeout

const UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 };

/**
 * Parses `grpc-timeout` (`1*8DIGIT` and a unit of H, M, S, m, u, n) into milliseconds; `undefined`
 * when it is malformed.
 */
export function parseGrpcTimeout(value: string): number | undefined {
  const n = value.length;
  if (n < 2 || n > 9) return undefined;
  const unit = UNIT_MS[value[n - 1]!];
  if (unit === undefined) return undefined;
  let amount = 0;
  for (let i = 0; i < n - 1; i++) {
    const d = value.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return undefined;
    amount = amount * 10 + d;
  }
  return amount * unit;
}

/** Encodes a remaining budget in milliseconds as `grpc-timeout`, in the finest unit that fits 8 digits. */
export function encodeGrpcTimeout(ms: number): string {
  if (ms < 1) return `${Math.max(1, Math.ceil(ms * 1000))}u`;
  const whole = Math.ceil(ms);
  if (whole < 1e8) return `${whole}m`;
  const s = Math.ceil(ms / 1000);
  if (s < 1e8) return `${s}S`;
  const m = Math.ceil(ms / 60_000);
  if (m < 1e8) return `${m}M`;
  return `${Math.min(99_999_999, Math.ceil(ms / 3_600_000))}H`;
}

// ---------------------------------------------------------------------------------------------------
// Status details

/**
 * `grpc-status-details-bin` for an error (base64 of a `google.rpc.Status`, unpadded as the gRPC spec
 * asks of `-bin` values), or `undefined` when it has neither a reason nor protobuf-bytes details.
 */
export function encodeStatusDetails(error: WeftError): string | undefined {
  let any = error.reason !== "";
  if (!any) for (const d of error.details) if (d.value instanceof Uint8Array) any = true;
  if (!any) return undefined;
  const w = new BinaryWriter();
  if (error.code !== Code.OK) w.tag(1, WireType.Varint).int32(error.code);
  if (error.rawMessage !== "") w.tag(2, WireType.LengthDelimited).string(error.rawMessage);
  for (const d of error.details) {
    if (d.value instanceof Uint8Array) writeAny(w, d.type, d.value);
  }
  if (error.reason !== "") writeAny(w, ERROR_INFO_TYPE, encodeErrorInfo(error.reason, WEFT_DOMAIN));
  const bytes = w.finish();
  return unpadded(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64"));
}

/** Base64 without its `=` padding: how gRPC sends `-bin` values (readers accept either). */
function unpadded(base64: string): string {
  let end = base64.length;
  while (end > 0 && base64.charCodeAt(end - 1) === 0x3d /* = */) end--;
  return end === base64.length ? base64 : base64.slice(0, end);
}

/** The JSON details of an error as a `weft-error-details-bin` value, or `undefined` when it has none. */
export function encodeJsonDetails(details: readonly ErrorDetail[]): string | undefined {
  const json: Array<{ type: string; json: JsonValue }> = [];
  for (const d of details) {
    if (!(d.value instanceof Uint8Array)) json.push({ type: d.type, json: d.value });
  }
  return json.length === 0
    ? undefined
    : unpadded(Buffer.from(JSON.stringify(json), "utf8").toString("base64"));
}

/** What `grpc-status-details-bin` and `weft-error-details-bin` say: a reason and the details. */
export interface DecodedDetails {
  reason: string;
  details: ErrorDetail[];
}

/**
 * Reads `grpc-status-details-bin` (a `google.rpc.Status`) and `weft-error-details-bin`. The
 * `ErrorInfo` of domain `weft` becomes the reason; other `Any`s become bytes details named by their
 * type URL's last segment; unreadable input is ignored rather than hiding the status itself.
 */
export function decodeDetails(statusBin: string | undefined, jsonBin: string | undefined): DecodedDetails {
  const out: DecodedDetails = { reason: "", details: [] };
  if (statusBin !== undefined && statusBin !== "") {
    try {
      const r = new BinaryReader(Buffer.from(statusBin, "base64"));
      while (r.pos < r.len) {
        const [no, wt] = r.tag();
        if (no === 3 && wt === WireType.LengthDelimited) {
          const { typeUrl, value } = readAny(r.bytes());
          const type = typeUrl.slice(typeUrl.lastIndexOf("/") + 1);
          if (type === ERROR_INFO_TYPE && out.reason === "") {
            const info = decodeErrorInfo(value);
            if (info.domain === WEFT_DOMAIN) {
              out.reason = info.reason;
              continue;
            }
          }
          out.details.push({ type, value });
        } else {
          r.skip(wt);
        }
      }
    } catch {
      // a broken details header does not hide the status
    }
  }
  if (jsonBin !== undefined && jsonBin !== "") {
    try {
      const parsed = JSON.parse(Buffer.from(jsonBin, "base64").toString("utf8")) as unknown;
      if (Array.isArray(parsed)) {
        for (const d of parsed as Array<{ type?: unknown; json?: unknown }>) {
          if (typeof d?.type === "string")
            out.details.push({ type: d.type, value: (d.json ?? null) as JsonValue });
        }
      }
    } catch {
      // ignored, as above
    }
  }
  return out;
}

function writeAny(w: BinaryWriter, type: string, value: Uint8Array): void {
  w.tag(3, WireType.LengthDelimited).fork();
  w.tag(1, WireType.LengthDelimited).string(type.includes("/") ? type : TYPE_URL_PREFIX + type);
  w.tag(2, WireType.LengthDelimited).bytes(value);
  w.join();
}

function readAny(bytes: Uint8Array): { typeUrl: string; value: Uint8Array } {
  const r = new BinaryReader(bytes);
  let typeUrl = "";
  let value: Uint8Array = new Uint8Array(0);
  while (r.pos < r.len) {
    const [no, wt] = r.tag();
    if (no === 1 && wt === WireType.LengthDelimited) typeUrl = r.string();
    else if (no === 2 && wt === WireType.LengthDelimited)
      value = new Uint8Array(r.bytes()); // a copy, not a view
    else r.skip(wt);
  }
  return { typeUrl, value };
}

/** `google.rpc.ErrorInfo { string reason = 1; string domain = 2; map<string,string> metadata = 3; }` */
export function encodeErrorInfo(reason: string, domain: string): Uint8Array {
  const w = new BinaryWriter();
  w.tag(1, WireType.LengthDelimited).string(reason);
  w.tag(2, WireType.LengthDelimited).string(domain);
  return w.finish();
}

export function decodeErrorInfo(bytes: Uint8Array): { reason: string; domain: string } {
  const r = new BinaryReader(bytes);
  let reason = "";
  let domain = "";
  while (r.pos < r.len) {
    const [no, wt] = r.tag();
    if (no === 1 && wt === WireType.LengthDelimited) reason = r.string();
    else if (no === 2 && wt === WireType.LengthDelimited) domain = r.string();
    else r.skip(wt);
  }
  return { reason, domain };
}

// ---------------------------------------------------------------------------------------------------
// HTTP status and RST_STREAM codes

/** gRPC's mapping of an HTTP status without a `grpc-status` to a code. */
export function codeFromHttpStatus(status: number): Code {
  switch (status) {
    case 400:
      return Code.INTERNAL;
    case 401:
      return Code.UNAUTHENTICATED;
    case 403:
      return Code.PERMISSION_DENIED;
    case 404:
      return Code.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return Code.UNAVAILABLE;
    default:
      return Code.UNKNOWN;
  }
}

/** gRPC's mapping of an HTTP/2 RST_STREAM error code to a status code. */
export function codeFromRstCode(rst: number): Code {
  switch (rst) {
    case 0x7: // REFUSED_STREAM
      return Code.UNAVAILABLE;
    case 0x8: // CANCEL
      return Code.CANCELLED;
    case 0xb: // ENHANCE_YOUR_CALM
      return Code.RESOURCE_EXHAUSTED;
    case 0xc: // INADEQUATE_SECURITY
      return Code.PERMISSION_DENIED;
    default:
      return Code.INTERNAL;
  }
}

/** The `WeftError` a `grpc-status` and its companions describe, or `undefined` for OK. */
export function errorFromStatus(
  status: number,
  message: string,
  statusBin: string | undefined,
  jsonBin: string | undefined,
  metadata: Metadata,
): WeftError | undefined {
  if (status === Code.OK) return undefined;
  const { reason, details } = decodeDetails(statusBin, jsonBin);
  return WeftError.fromWire(status, decodeGrpcMessage(message), { reason, details, metadata });
}
