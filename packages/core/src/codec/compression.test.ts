import { describe, expect, it } from "vitest";
import { Code } from "../errors/code.ts";
import { WeftError } from "../errors/weft-error.ts";
import vectors from "../protocol/golden-vectors.json" with { type: "json" };
import { Compressor, compress, compressorName, decompress } from "./compression.ts";

function caught(fn: () => unknown): WeftError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(WeftError);
    return e as WeftError;
  }
  throw new Error("expected a throw");
}

const text = Buffer.from("weft ".repeat(2000));
const MAX = 4 * 1024 * 1024;

describe("compressor ids", () => {
  it("are 0 none, 1 gzip, 2 brotli", () => {
    expect(Compressor).toEqual({ none: 0, gzip: 1, brotli: 2 });
    expect([0, 1, 2, 3, -1].map(compressorName)).toEqual(["none", "gzip", "brotli", undefined, undefined]);
  });
});

describe("compress / decompress", () => {
  it("leaves bytes alone for none", () => {
    expect(compress(Compressor.none, text)).toBe(text);
    expect(decompress(Compressor.none, text, 10)).toBe(text);
  });

  for (const [name, id] of [
    ["gzip", Compressor.gzip],
    ["brotli", Compressor.brotli],
  ] as const) {
    it(`round-trips with ${name}`, () => {
      const packed = compress(id, text);
      expect(packed.length).toBeLessThan(text.length / 10);
      expect(Buffer.from(decompress(id, packed, MAX)).equals(text)).toBe(true);
      const empty = compress(id, new Uint8Array(0));
      expect(decompress(id, empty, MAX).length).toBe(0);
    });

    it(`${name}: allows output of exactly the cap`, () => {
      const packed = compress(id, text);
      expect(decompress(id, packed, text.length).length).toBe(text.length);
    });

    it(`${name}: refuses output beyond the cap as RESOURCE_EXHAUSTED/MESSAGE_TOO_LARGE`, () => {
      // A bomb: 16 MiB of zeros packs into a few KiB.
      const bomb = compress(id, Buffer.alloc(16 * 1024 * 1024));
      expect(bomb.length).toBeLessThan(64 * 1024);
      const e = caught(() => decompress(id, bomb, MAX));
      expect(e.code).toBe(Code.RESOURCE_EXHAUSTED);
      expect(e.reason).toBe("MESSAGE_TOO_LARGE");
      expect(e.rawMessage).toContain(String(MAX));
      expect(caught(() => decompress(id, compress(id, text), text.length - 1)).reason).toBe(
        "MESSAGE_TOO_LARGE",
      );
    });

    it(`${name}: turns corrupt input into INVALID_ARGUMENT/DECOMPRESS_FAILED`, () => {
      const packed = Buffer.from(compress(id, text));
      for (const bad of [Buffer.from("definitely not compressed"), packed.subarray(0, packed.length >> 1)]) {
        const e = caught(() => decompress(id, bad, MAX));
        expect(e.code).toBe(Code.INVALID_ARGUMENT);
        expect(e.reason).toBe("DECOMPRESS_FAILED");
        expect(e.cause).toBeInstanceOf(Error);
      }
    });
  }

  it("writes gzip as RFC 1952 (with the 1f 8b header), not a bare zlib or deflate stream", () => {
    const packed = Buffer.from(compress(Compressor.gzip, text));
    expect(packed.subarray(0, 3).toString("hex")).toBe("1f8b08");
  });

  it("inflates the message-gzip golden vector", () => {
    const v = vectors.find((x) => x.name === "message-gzip")!;
    expect(v.frame.compressor).toBe(Compressor.gzip);
    const body = Buffer.from(v.frame.bodyHex, "hex");
    expect(Buffer.from(decompress(Compressor.gzip, body, MAX)).toString()).toBe('{"text":"hi"}');
  });

  it("refuses an unknown compressor id as UNIMPLEMENTED/UNKNOWN_COMPRESSOR", () => {
    const e = caught(() => decompress(3, text, MAX));
    expect(e.code).toBe(Code.UNIMPLEMENTED);
    expect(e.reason).toBe("UNKNOWN_COMPRESSOR");
  });
});
