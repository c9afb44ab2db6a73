import { Packr } from "msgpackr";
import { ConfigError } from "../errors/weft-error.ts";
import { decodeFailed } from "./message-codec.ts";

// No records, no structured-clone references, no extensions for typed arrays: plain MessagePack for
// plain values, and `undefined` as nil (msgpackr's own marker for it is an extension, which a strict
// decoder refuses).
const packr = new Packr({
  useRecords: false,
  moreTypes: false,
  structuredClone: false,
  encodeUndefinedAsNil: true,
});

/**
 * Encodes a value as MessagePack (with msgpackr). Plain values (null, booleans, numbers, strings,
 * `Uint8Array`, arrays, plain objects and `Date`) give plain MessagePack that `MsgpackDecoder` reads
 * back equal, with two exceptions: `undefined` becomes nil (`null`), and `-0` becomes `0`. Other
 * values (`Set`, `Error`, `RegExp`, other typed arrays, a `Map` with non-string keys, a `bigint`
 * beyond 64 bits) become msgpackr extensions or maps that a strict receiver refuses.
 */
export function encodeMsgpack(value: unknown): Uint8Array {
  return packr.pack(value);
}

/**
 * Nesting limit of the strict MessagePack decoder: arrays and maps at most this deep (a top-level
 * array is depth 1). The same as protobuf's customary recursion limit.
 */
export const MSGPACK_MAX_DEPTH = 100;

export interface MsgpackDecodeOptions {
  /** Deepest nesting of arrays and maps accepted; deeper input is refused. Default `MSGPACK_MAX_DEPTH`. */
  maxDepth?: number;
  /**
   * 64-bit integers beyond ±(2^53 − 1): `"number"` rounds them to the nearest double, as
   * `JSON.parse` does with long numbers; `"bigint"` keeps them exact as a `bigint`. Integers in the
   * safe range are always numbers. Default `"number"`.
   */
  int64?: "number" | "bigint";
}

/**
 * Decodes untrusted MessagePack strictly, in one pass over the bytes. It accepts exactly one value of
 * the plain MessagePack types and nothing after it:
 *
 * - nil → `null`, bool, int (see `int64`), float32/float64 → number, str → string (valid UTF-8
 *   only), bin → a fresh `Uint8Array` (a copy: it never pins or aliases the frame's buffer), array →
 *   array, map → plain object;
 * - the timestamp extension (type −1, 4, 8 or 12 bytes of data) → `Date`, truncated to the
 *   millisecond; nanoseconds ≥ 10^9 or an instant outside `Date`'s range are refused;
 * - map keys are strings, or integers which become their decimal string (as a JSON object would
 *   hold them); any other key, a key seen twice in one map, or a key `__proto__` is refused.
 *
 * Everything else is refused: every other extension type (msgpackr's Error, Set, RegExp, typed
 * arrays, BigInt, undefined, records, bundled strings and references among them), the reserved byte
 * 0xC1 wherever it appears, nesting deeper than `maxDepth`, truncated input and trailing bytes.
 * Every declared length (array, map, str, bin, ext) is checked against the bytes that remain before
 * anything is allocated for it, so what a body decodes to is bounded by a small multiple of its size.
 *
 * A refusal is a `WeftError` INVALID_ARGUMENT with reason `DECODE_FAILED`, whose cause names the
 * problem and its byte offset. Nothing else is thrown.
 */
export interface MsgpackDecoder {
  decode(bytes: Uint8Array): unknown;
}

/** A strict decoder (see `MsgpackDecoder`); bad options are a `ConfigError`. */
export function createMsgpackDecoder(options: MsgpackDecodeOptions = {}): MsgpackDecoder {
  const maxDepth = options.maxDepth ?? MSGPACK_MAX_DEPTH;
  if (!Number.isInteger(maxDepth) || maxDepth < 1 || maxDepth > 1000) {
    throw new ConfigError("maxDepth", "an integer from 1 to 1000", maxDepth);
  }
  const int64 = options.int64 ?? "number";
  if (int64 !== "number" && int64 !== "bigint") {
    throw new ConfigError("int64", '"number" or "bigint"', int64);
  }
  return new StrictDecoder(maxDepth, int64 === "bigint");
}

const utf8 = new TextDecoder("utf-8", { fatal: true });
const EMPTY = new Uint8Array(0);
/** Multi-byte numbers are copied here and read back, rather than allocating a view per message. */
const scratchBytes = new Uint8Array(12);
const scratch = new DataView(scratchBytes.buffer);
const TWO_32 = 4294967296;
/** Strings up to this many bytes are decoded in JavaScript when they are ASCII. */
const SHORT_STRING = 16;
const KEY_CACHE_MASK = 0xfff;
/** The largest distance from the epoch a `Date` holds. */
const MAX_DATE_MS = 8.64e15;

/** Thrown internally and turned into a `WeftError` at the boundary. */
class Malformed extends Error {
  override name = "MalformedMessagePack";
}

/**
 * One decoder serves any number of calls: `decode` is synchronous and calls no user code, so the
 * cursor fields cannot be shared by two decodes at once.
 */
class StrictDecoder implements MsgpackDecoder {
  readonly #maxDepth: number;
  readonly #bigint: boolean;
  #src: Uint8Array = EMPTY;
  #pos = 0;
  #depth = 0;
  readonly #keys: (string | undefined)[] = new Array(KEY_CACHE_MASK + 1).fill(undefined);

  constructor(maxDepth: number, bigint: boolean) {
    this.#maxDepth = maxDepth;
    this.#bigint = bigint;
  }

  decode(bytes: Uint8Array): unknown {
    this.#src = bytes;
    this.#pos = 0;
    this.#depth = 0;
    try {
      const value = this.#value();
      if (this.#pos !== bytes.length) this.#fail(`${bytes.length - this.#pos} trailing bytes`);
      return value;
    } catch (e) {
      // A stack overflow cannot happen within the depth limit, but nothing but a WeftError leaves.
      throw decodeFailed("msgpack", e instanceof Malformed ? e : new Malformed(String(e)));
    } finally {
      // Do not keep the last message's buffer alive.
      this.#src = EMPTY;
    }
  }

  #fail(problem: string): never {
    throw new Malformed(`${problem} at byte ${this.#pos}`);
  }

  /** Checks that `n` more bytes exist before anything is read or allocated for them. */
  #need(n: number, what: string): void {
    const left = this.#src.length - this.#pos;
    if (n > left) this.#fail(`${what} needs ${n} bytes, ${left} remain`);
  }

  #value(): unknown {
    const src = this.#src;
    if (this.#pos >= src.length) this.#fail("unexpected end of data");
    const b = src[this.#pos++]!;
    if (b < 0x80) return b;
    if (b < 0x90) return this.#map(b & 0x0f);
    if (b < 0xa0) return this.#array(b & 0x0f);
    if (b < 0xc0) return this.#string(b & 0x1f);
    if (b >= 0xe0) return b - 0x100;
    switch (b) {
      case 0xc0:
        return null;
      case 0xc2:
        return false;
      case 0xc3:
        return true;
      case 0xc4:
        return this.#bin(this.#uint(1));
      case 0xc5:
        return this.#bin(this.#uint(2));
      case 0xc6:
        return this.#bin(this.#uint(4));
      case 0xc7:
        return this.#ext(this.#uint(1));
      case 0xc8:
        return this.#ext(this.#uint(2));
      case 0xc9:
        return this.#ext(this.#uint(4));
      case 0xca:
        return this.#number(4, "float32").getFloat32(0);
      case 0xcb:
        return this.#number(8, "float64").getFloat64(0);
      case 0xcc:
        return this.#uint(1);
      case 0xcd:
        return this.#uint(2);
      case 0xce:
        return this.#uint(4);
      case 0xcf:
        return this.#int64(false);
      case 0xd0:
        return this.#number(1, "int8").getInt8(0);
      case 0xd1:
        return this.#number(2, "int16").getInt16(0);
      case 0xd2:
        return this.#number(4, "int32").getInt32(0);
      case 0xd3:
        return this.#int64(true);
      case 0xd4:
        return this.#ext(1);
      case 0xd5:
        return this.#ext(2);
      case 0xd6:
        return this.#ext(4);
      case 0xd7:
        return this.#ext(8);
      case 0xd8:
        return this.#ext(16);
      case 0xd9:
        return this.#string(this.#uint(1));
      case 0xda:
        return this.#string(this.#uint(2));
      case 0xdb:
        return this.#string(this.#uint(4));
      case 0xdc:
        return this.#array(this.#uint(2));
      case 0xdd:
        return this.#array(this.#uint(4));
      case 0xde:
        return this.#map(this.#uint(2));
      case 0xdf:
        return this.#map(this.#uint(4));
      default:
        this.#pos--;
        return this.#fail("reserved byte 0xc1");
    }
  }

  /** Consumes the next `size` (at most 12) bytes and returns a view of a copy of them at offset 0. */
  #number(size: number, what: string): DataView {
    this.#need(size, what);
    const src = this.#src;
    const at = this.#pos;
    for (let i = 0; i < size; i++) scratchBytes[i] = src[at + i]!;
    this.#pos = at + size;
    return scratch;
  }

  /** A big-endian unsigned integer of 1, 2 or 4 bytes. */
  #uint(size: 1 | 2 | 4): number {
    this.#need(size, "length or integer");
    const at = this.#pos;
    this.#pos += size;
    const src = this.#src;
    if (size === 1) return src[at]!;
    if (size === 2) return (src[at]! << 8) | src[at + 1]!;
    return src[at]! * 0x1000000 + ((src[at + 1]! << 16) | (src[at + 2]! << 8) | src[at + 3]!);
  }

  #int64(signed: boolean): number | bigint {
    const view = this.#number(8, "int64");
    const value = (signed ? view.getInt32(0) : view.getUint32(0)) * TWO_32 + view.getUint32(4);
    if (!this.#bigint || Number.isSafeInteger(value)) return value;
    return signed ? view.getBigInt64(0) : view.getBigUint64(0);
  }

  #string(length: number): string {
    this.#need(length, "string");
    const src = this.#src;
    const start = this.#pos;
    const end = start + length;
    this.#pos = end;
    if (length <= SHORT_STRING) {
      for (let i = start; i < end; i++) if (src[i]! >= 0x80) return this.#utf8(start, end);
      return ascii(src, start, length);
    }
    return this.#utf8(start, end);
  }

  #utf8(start: number, end: number): string {
    try {
      return utf8.decode(this.#src.subarray(start, end));
    } catch {
      this.#pos = start;
      return this.#fail("string is not valid UTF-8");
    }
  }

  #bin(length: number): Uint8Array {
    this.#need(length, "bin");
    const start = this.#pos;
    this.#pos += length;
    return new Uint8Array(this.#src.subarray(start, this.#pos));
  }

  #array(length: number): unknown[] {
    // Every element takes at least one byte.
    this.#need(length, `array of ${length} elements`);
    if (++this.#depth > this.#maxDepth) this.#fail(`nesting deeper than ${this.#maxDepth}`);
    const array = new Array<unknown>(length);
    for (let i = 0; i < length; i++) array[i] = this.#value();
    this.#depth--;
    return array;
  }

  #map(size: number): Record<string, unknown> {
    // Every entry takes at least two bytes.
    this.#need(size * 2, `map of ${size} entries`);
    if (++this.#depth > this.#maxDepth) this.#fail(`nesting deeper than ${this.#maxDepth}`);
    const object: Record<string, unknown> = {};
    for (let i = 0; i < size; i++) {
      const at = this.#pos;
      const key = this.#key();
      if (key === "__proto__" || Object.hasOwn(object, key)) {
        this.#pos = at;
        this.#fail(key === "__proto__" ? "map key __proto__" : `duplicate map key ${JSON.stringify(key)}`);
      }
      object[key] = this.#value();
    }
    this.#depth--;
    return object;
  }

  #key(): string {
    const src = this.#src;
    const b = src[this.#pos]!; // the map's length check guarantees this byte
    if ((b & 0xe0) === 0xa0) {
      this.#pos++;
      return this.#shortKey(b & 0x1f);
    }
    if (b === 0xd9 || b === 0xda || b === 0xdb) return this.#value() as string;
    if (b === 0xcf || b === 0xd3) {
      // Exact, whatever `int64` says: a key is text.
      this.#pos++;
      const view = this.#number(8, "int64");
      return String(b === 0xd3 ? view.getBigInt64(0) : view.getBigUint64(0));
    }
    if (b < 0x80 || b >= 0xe0 || (b >= 0xcc && b <= 0xd2)) return String(this.#value());
    return this.#fail(b === 0xc1 ? "reserved byte 0xc1" : "map key is neither a string nor an integer");
  }

  /**
   * A fixstr key. Keys repeat from message to message, and a string the engine has seen as a property
   * name before makes a much faster property store than a fresh one, so ASCII keys come from a small
   * cache, checked byte for byte (a collision only costs a miss).
   */
  #shortKey(length: number): string {
    if (length > SHORT_STRING) return this.#string(length);
    this.#need(length, "string");
    const src = this.#src;
    const start = this.#pos;
    const end = start + length;
    let hash = length;
    for (let i = start; i < end; i++) {
      const c = src[i]!;
      if (c >= 0x80) return this.#string(length);
      hash = (hash * 31 + c) | 0;
    }
    this.#pos = end;
    const slot = (hash ^ (hash >>> 12)) & KEY_CACHE_MASK;
    const cached = this.#keys[slot];
    if (cached !== undefined && cached.length === length) {
      let i = 0;
      while (i < length && cached.charCodeAt(i) === src[start + i]) i++;
      if (i === length) return cached;
    }
    const key = ascii(src, start, length);
    this.#keys[slot] = key;
    return key;
  }

  #ext(length: number): Date {
    this.#need(1 + length, "extension");
    const at = this.#pos;
    const type = (this.#src[at]! << 24) >> 24;
    if (type !== -1) this.#fail(`extension type ${type} is not plain MessagePack`);
    if (length !== 4 && length !== 8 && length !== 12) this.#fail(`timestamp of ${length} bytes`);
    this.#pos++;
    const data = this.#number(length, "timestamp");
    let seconds: number;
    let nanos: number;
    if (length === 4) {
      seconds = data.getUint32(0);
      nanos = 0;
    } else if (length === 8) {
      const high = data.getUint32(0);
      nanos = high >>> 2;
      seconds = (high & 0x3) * TWO_32 + data.getUint32(4);
    } else {
      nanos = data.getUint32(0);
      seconds = data.getInt32(4) * TWO_32 + data.getUint32(8);
    }
    const ms = seconds * 1000 + Math.floor(nanos / 1e6);
    if (nanos >= 1e9 || !(Math.abs(ms) <= MAX_DATE_MS)) {
      this.#pos = at;
      this.#fail("timestamp out of range");
    }
    return new Date(ms);
  }
}

/**
 * `length` ASCII bytes as a string (called with 0 to 16). One `fromCharCode` call of fixed arity is several
 * times faster than building the string a character at a time, or than `TextDecoder` for so few bytes.
 */
function ascii(b: Uint8Array, s: number, length: number): string {
  // biome-ignore format: one line per length
  switch (length) {
    case 1: return String.fromCharCode(b[s]!);
    case 2: return String.fromCharCode(b[s]!, b[s + 1]!);
    case 3: return String.fromCharCode(b[s]!, b[s + 1]!, b[s + 2]!);
    case 4: return String.fromCharCode(b[s]!, b[s + 1]!, b[s + 2]!, b[s + 3]!);
    case 5: return String.fromCharCode(b[s]!, b[s + 1]!, b[s + 2]!, b[s + 3]!, b[s + 4]!);
    case 6: return String.fromCharCode(b[s]!, b[s + 1]!, b[s + 2]!, b[s + 3]!, b[s + 4]!, b[s + 5]!);
    case 7: return String.fromCharCode(b[s]!, b[s + 1]!, b[s + 2]!, b[s + 3]!, b[s + 4]!, b[s + 5]!, b[s + 6]!);
    case 8: return String.fromCharCode(b[s]!, b[s + 1]!, b[s + 2]!, b[s + 3]!, b[s + 4]!, b[s + 5]!, b[s + 6]!, b[s + 7]!);
    case 9: return String.fromCharCode(b[s]!, b[s + 1]!, b[s + 2]!, b[s + 3]!, b[s + 4]!, b[s + 5]!, b[s + 6]!, b[s + 7]!, b[s + 8]!);
    case 10: return String.fromCharCode(b[s]!, b[s + 1]!, b[s + 2]!, b[s + 3]!, b[s + 4]!, b[s + 5]!, b[s + 6]!, b[s + 7]!, b[s + 8]!, b[s + 9]!);
    case 11: return String.fromCharCode(b[s]!, b[s + 1]!, b[s + 2]!, b[s + 3]!, b[s + 4]!, b[s + 5]!, b[s + 6]!, b[s + 7]!, b[s + 8]!, b[s + 9]!, b[s + 10]!);
    case 12: return String.fromCharCode(b[s]!, b[s + 1]!, b[s + 2]!, b[s + 3]!, b[s + 4]!, b[s + 5]!, b[s + 6]!, b[s + 7]!, b[s + 8]!, b[s + 9]!, b[s + 10]!, b[s + 11]!);
    case 13: return String.fromCharCode(b[s]!, b[s + 1]!, b[s + 2]!, b[s + 3]!, b[s + 4]!, b[s + 5]!, b[s + 6]!, b[s + 7]!, b[s + 8]!, b[s + 9]!, b[s + 10]!, b[s + 11]!, b[s + 12]!);
    case 14: return String.fromCharCode(b[s]!, b[s + 1]!, b[s + 2]!, b[s + 3]!, b[s + 4]!, b[s + 5]!, b[s + 6]!, b[s + 7]!, b[s + 8]!, b[s + 9]!, b[s + 10]!, b[s + 11]!, b[s + 12]!, b[s + 13]!);
    case 15: return String.fromCharCode(b[s]!, b[s + 1]!, b[s + 2]!, b[s + 3]!, b[s + 4]!, b[s + 5]!, b[s + 6]!, b[s + 7]!, b[s + 8]!, b[s + 9]!, b[s + 10]!, b[s + 11]!, b[s + 12]!, b[s + 13]!, b[s + 14]!);
    case 16: return String.fromCharCode(b[s]!, b[s + 1]!, b[s + 2]!, b[s + 3]!, b[s + 4]!, b[s + 5]!, b[s + 6]!, b[s + 7]!, b[s + 8]!, b[s + 9]!, b[s + 10]!, b[s + 11]!, b[s + 12]!, b[s + 13]!, b[s + 14]!, b[s + 15]!);
    default: return String.fromCharCode(...b.subarray(s, s + length));
  }
}
