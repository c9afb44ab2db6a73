import { Code } from "../errors/code.ts";
import { Reason } from "../errors/reason.ts";
import { type ErrorDetail, type JsonValue, WeftError } from "../errors/weft-error.ts";
import { Metadata } from "../metadata/metadata.ts";

/**
 * Body of a server END frame: empty for OK, else UTF-8 JSON
 * `{"code":N,"reason":"…","message":"…","details":[{"type":"…","json":…}|{"type":"…","bytes":"<base64>"}]}`.
 */
export function encodeStatus(error: WeftError | undefined): Uint8Array {
  if (error === undefined || error.code === Code.OK) return EMPTY;
  // a server that answers many calls with one shared error (a shedder) encodes it once
  if (error === lastEncoded && lastBody !== undefined && error.details.length === 0) return lastBody;
  const body = encodeStatusOf(error);
  lastEncoded = error;
  lastBody = body;
  return body;
}

/** The last error `encodeStatus` encoded, and its body (its fields are read-only; details are not). */
let lastEncoded: WeftError | undefined;
let lastBody: Uint8Array | undefined;

function encodeStatusOf(error: WeftError): Uint8Array {
  const details = error.details.map((d) =>
    d.value instanceof Uint8Array
      ? {
          type: d.type,
          bytes: Buffer.from(d.value.buffer, d.value.byteOffset, d.value.byteLength).toString("base64"),
        }
      : { type: d.type, json: d.value },
  );
  // Key order as documented: code, reason, message, details.
  const status: Record<string, unknown> = { code: error.code };
  if (error.reason !== "") status.reason = error.reason;
  status.message = error.rawMessage;
  if (details.length > 0) status.details = details;
  return Buffer.from(JSON.stringify(status));
}

/** Parses an END body; `undefined` means OK. A body that is not valid status JSON is itself an error. */
export function decodeStatus(body: Uint8Array, trailers: Metadata): WeftError | undefined {
  if (body.length === 0) return undefined;
  let parsed: { code?: unknown; reason?: unknown; message?: unknown; details?: unknown };
  try {
    parsed = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString("utf8"));
  } catch {
    return malformedStatus();
  }
  // Valid JSON that is not an object (`null`, `5`, `[]`) is no status either.
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return malformedStatus();
  const code = typeof parsed.code === "number" ? parsed.code : Code.UNKNOWN;
  if (code === Code.OK) return undefined;
  const details: ErrorDetail[] = [];
  if (Array.isArray(parsed.details)) {
    for (const d of parsed.details as Array<{ type?: unknown; bytes?: unknown; json?: unknown }>) {
      if (typeof d?.type !== "string") continue;
      if (typeof d.bytes === "string")
        details.push({ type: d.type, value: new Uint8Array(Buffer.from(d.bytes, "base64")) });
      else details.push({ type: d.type, value: (d.json ?? null) as JsonValue });
    }
  }
  return WeftError.fromWire(code, typeof parsed.message === "string" ? parsed.message : "", {
    reason: typeof parsed.reason === "string" ? parsed.reason : "",
    metadata: new Metadata(trailers),
    details,
  });
}

function malformedStatus(): WeftError {
  return new WeftError(Code.INTERNAL, "peer sent an unreadable status", { reason: Reason.MALFORMED_STATUS });
}

/** GOAWAY body: `u32 lastStreamId, u32 code`, then a UTF-8 message. */
export function encodeGoaway(lastStreamId: number, code: Code, message: string): Uint8Array {
  const msg = Buffer.from(message, "utf8");
  const out = Buffer.allocUnsafe(8 + msg.length);
  out.writeUInt32BE(lastStreamId >>> 0, 0);
  out.writeUInt32BE(code, 4);
  msg.copy(out, 8);
  return out;
}

export function decodeGoaway(body: Uint8Array): { lastStreamId: number; code: number; message: string } {
  if (body.length < 8) return { lastStreamId: 0xffffffff, code: Code.UNAVAILABLE, message: "" };
  const b = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  return { lastStreamId: b.readUInt32BE(0), code: b.readUInt32BE(4), message: b.toString("utf8", 8) };
}

/** CREDIT body: `u32` byte increment, clamped to 0..2^32-1 (negative or NaN grants nothing). */
export function encodeCredit(bytes: number): Uint8Array {
  const out = Buffer.allocUnsafe(4);
  out.writeUInt32BE(bytes > 0 ? Math.min(Math.floor(bytes), 0xffffffff) : 0, 0);
  return out;
}

export function decodeCredit(body: Uint8Array): number {
  if (body.length < 4) return 0;
  return ((body[0]! << 24) | (body[1]! << 16) | (body[2]! << 8) | body[3]!) >>> 0;
}

const EMPTY = new Uint8Array(0);
