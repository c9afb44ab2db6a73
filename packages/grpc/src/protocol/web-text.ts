/*
 * gRPC-web's text mode (`application/grpc-web-text`, the default of the grpc-web npm client): the
 * same frames as binary gRPC-web, base64-encoded. A request body may be several base64 runs one
 * after the other, each with its own padding; a response is sent one padded run per chunk, so
 * streamed messages leave at once and clients decode in groups of four characters.
 */

const TEXT_TYPE = "application/grpc-web-text";
const BINARY_TYPE = "application/grpc-web";

/** True for `application/grpc-web-text` with or without a `+proto`/`+json` suffix or parameters. */
export function isWebText(contentType: string): boolean {
  return contentType.startsWith(TEXT_TYPE);
}

/** The binary gRPC-web content type a text one stands for (`…-text+proto` → `…+proto`). */
export function binaryWebType(contentType: string): string {
  return BINARY_TYPE + contentType.slice(TEXT_TYPE.length);
}

/** The text content type of a binary gRPC-web response (`…+proto` → `…-text+proto`). */
export function textWebType(contentType: string): string {
  return contentType.startsWith(BINARY_TYPE) && !isWebText(contentType)
    ? TEXT_TYPE + contentType.slice(BINARY_TYPE.length)
    : contentType;
}

const BASE64_CHAR = /[^A-Za-z0-9+/=]/;

/**
 * Decodes base64 text arriving in chunks into bytes: whitespace is skipped, characters are taken
 * in whole groups of four (what is left waits for the next chunk), and a group with padding ends
 * its run, so runs encoded separately may follow one another. Throws on a character outside
 * base64 or input that ends inside a group.
 */
export class Base64Decoder {
  #pending = "";

  /** Decodes what `chunk` completes; the bytes of whole groups, possibly none. */
  push(chunk: Uint8Array | string): Buffer {
    let text = this.#pending + (typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("latin1"));
    if (/\s/.test(text)) text = text.replace(/\s+/g, "");
    if (BASE64_CHAR.test(text)) throw new Error("grpc-web-text body is not base64");
    const whole = text.length - (text.length % 4);
    this.#pending = text.slice(whole);
    if (whole === 0) return Buffer.alloc(0);
    const groups = text.slice(0, whole);
    const pad = groups.indexOf("=");
    // one run (padding only at its very end, if any): one decode
    if (pad < 0 || pad >= whole - 2) return Buffer.from(groups, "base64");
    const parts: Buffer[] = [];
    let start = 0;
    while (start < whole) {
      const p = groups.indexOf("=", start);
      // the run ends with the group that holds its first padding character
      const end = p < 0 ? whole : p - (p % 4) + 4;
      parts.push(Buffer.from(groups.slice(start, end), "base64"));
      start = end;
    }
    return Buffer.concat(parts);
  }

  /** Throws when the input ended inside a group of four. */
  end(): void {
    if (this.#pending !== "") throw new Error("grpc-web-text body ends inside a base64 group");
  }
}

/** A base64 request body as the bytes it encodes. */
export async function* decodeWebText(body: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
  const decoder = new Base64Decoder();
  for await (const chunk of body) {
    const bytes = decoder.push(chunk);
    if (bytes.length > 0) yield bytes;
  }
  decoder.end();
}

/**
 * A response body as base64, one padded run per chunk. connect-node calls `throw` or `return` only
 * once a `next` has settled (a write failed, or it is done): the loop then closes the source with
 * `return`. How the call ends is the bridge's to decide (`CANCELLED` once the client is gone), the
 * same for binary gRPC-web, whatever is thrown in here.
 */
export async function* encodeWebText(body: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
  for await (const chunk of body) {
    if (chunk.length > 0)
      yield Buffer.from(
        Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length).toString("base64"),
        "latin1",
      );
  }
}
