import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { Compressor } from "../codec/compression.ts";
import { rawBytes } from "../codec/protobuf-codec.ts";
import { decodeBody, encodeBody, resolveCompression } from "./wire-message.ts";

describe("encodeBody", () => {
  const gzip = resolveCompression({ algorithm: "gzip", threshold: 64 });

  it("compresses messages at or above the threshold", () => {
    const text = Buffer.from("weft ".repeat(200));
    const { body, compressor } = encodeBody(rawBytes, text, "raw", gzip);
    expect(compressor).toBe(Compressor.gzip);
    expect(body.length).toBeLessThan(text.length);
    expect(Buffer.from(decodeBody(rawBytes, body, 0, compressor, 1 << 20))).toEqual(text);
  });

  it("leaves smaller messages alone", () => {
    const { compressor } = encodeBody(rawBytes, Buffer.alloc(63, 1), "raw", gzip);
    expect(compressor).toBe(Compressor.none);
  });

  it("sends incompressible data uncompressed instead of growing it", () => {
    const noise = randomBytes(4096);
    const { body, compressor } = encodeBody(rawBytes, noise, "raw", gzip);
    expect(compressor).toBe(Compressor.none);
    expect(body).toBe(noise);
  });
});
