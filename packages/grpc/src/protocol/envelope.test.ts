import { Code, Compressor, Reason, WeftError } from "@weft/core";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  EnvelopeReader,
  encodeEnvelope,
  FLAG_COMPRESSED,
  FLAG_END_STREAM,
  FLAG_TRAILERS,
  MessageByteCounter,
  messageCompressor,
} from "./envelope.ts";

function readAll(reader: EnvelopeReader, chunks: Buffer[]): Array<[number, string]> {
  const out: Array<[number, string]> = [];
  const sink = { onEnvelope: (flags: number, body: Buffer) => out.push([flags, body.toString("hex")]) };
  for (const c of chunks) reader.push(c, sink);
  return out;
}

function split(buf: Buffer, sizes: number[]): Buffer[] {
  const chunks: Buffer[] = [];
  let offset = 0;
  let i = 0;
  while (offset < buf.length) {
    const n = Math.max(1, sizes[i++ % sizes.length] ?? 1);
    chunks.push(buf.subarray(offset, offset + n));
    offset += n;
  }
  return chunks;
}

describe("messageCompressor", () => {
  it("reads 0 as uncompressed and 1 as gzip when the call announced an encoding", () => {
    expect(messageCompressor(0, false)).toBe(Compressor.none);
    expect(messageCompressor(0, true)).toBe(Compressor.none);
    expect(messageCompressor(1, true)).toBe(Compressor.gzip);
  });

  it("rejects any other flag byte, and 1 without an encoding, as INTERNAL", () => {
    for (const flags of [2, 3, 0x80, 0xff]) {
      const e = (() => {
        try {
          messageCompressor(flags, true);
        } catch (error) {
          return error;
        }
      })() as WeftError;
      expect(e).toBeInstanceOf(WeftError);
      expect(e.code).toBe(Code.INTERNAL);
      expect(e.reason).toBe(Reason.BAD_COMPRESSION);
    }
    expect(() => messageCompressor(1, false)).toThrow(/without grpc-encoding/);
  });
});

describe("encodeEnvelope", () => {
  it("writes flags, a big-endian u32 length, then the body", () => {
    expect(encodeEnvelope(Buffer.from("abc"), FLAG_COMPRESSED).toString("hex")).toBe("0100000003616263");
    expect(encodeEnvelope(new Uint8Array(0)).toString("hex")).toBe("0000000000");
  });
});

describe("EnvelopeReader", () => {
  it("reads messages fed one byte at a time", () => {
    const wire = Buffer.concat([encodeEnvelope(Buffer.from("hello")), encodeEnvelope(Buffer.alloc(0), 1)]);
    expect(readAll(new EnvelopeReader(100), split(wire, [1]))).toEqual([
      [0, Buffer.from("hello").toString("hex")],
      [1, ""],
    ]);
  });

  it("reads the same messages whatever the chunking (property)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 1 }), fc.uint8Array({ maxLength: 300 })), {
          maxLength: 8,
        }),
        fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 10 }),
        (messages, sizes) => {
          const wire = Buffer.concat(messages.map(([f, b]) => encodeEnvelope(b, f)));
          const got = readAll(new EnvelopeReader(1000), split(wire, sizes));
          expect(got).toEqual(messages.map(([f, b]) => [f, Buffer.from(b).toString("hex")]));
        },
      ),
    );
  });

  it("hands out views of a chunk that holds a whole message, without copying", () => {
    const wire = encodeEnvelope(Buffer.from("view"));
    let seen: Buffer | undefined;
    new EnvelopeReader(100).push(wire, { onEnvelope: (_f, body) => (seen = body) });
    expect(seen?.buffer).toBe(wire.buffer);
  });

  it("refuses an oversized message as soon as its prefix is read, before buffering its body", () => {
    const reader = new EnvelopeReader(10);
    const prefix = Buffer.from([0, 0, 0, 0, 11]);
    let error: unknown;
    try {
      // split prefix: the length is checked once all five bytes are there
      reader.push(prefix.subarray(0, 3), { onEnvelope: () => {} });
      reader.push(prefix.subarray(3), { onEnvelope: () => {} });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(WeftError);
    expect((error as WeftError).code).toBe(Code.RESOURCE_EXHAUSTED);
    expect(reader.buffered).toBeLessThanOrEqual(5);
  });

  it("arbitrary bytes give messages or a typed error, never anything else (fuzz)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.integer({ min: 1, max: 17 }), (bytes, size) => {
        const reader = new EnvelopeReader(64);
        try {
          readAll(reader, split(Buffer.from(bytes), [size]));
        } catch (e) {
          expect(e).toBeInstanceOf(WeftError);
        }
        expect(reader.buffered).toBeLessThanOrEqual(64 + 5);
      }),
    );
  });
});

describe("MessageByteCounter", () => {
  function count(chunks: Buffer[]): number[] {
    const counter = new MessageByteCounter();
    return chunks.map((c) => counter.push(c));
  }

  it("counts message bodies, not prefixes, trailers or end-of-stream frames", () => {
    const wire = Buffer.concat([
      encodeEnvelope(Buffer.from("hello")),
      encodeEnvelope(Buffer.alloc(0)),
      encodeEnvelope(Buffer.from("zipped"), FLAG_COMPRESSED),
      encodeEnvelope(Buffer.from("grpc-status:0\r\n"), FLAG_TRAILERS),
      encodeEnvelope(Buffer.from("{}"), FLAG_END_STREAM),
      encodeEnvelope(Buffer.from("{}"), FLAG_END_STREAM | FLAG_COMPRESSED),
    ]);
    expect(count([wire])).toEqual([11]);
  });

  it("counts a frame once it is complete, fed one byte at a time", () => {
    const wire = Buffer.concat([encodeEnvelope(Buffer.from("abc")), encodeEnvelope(Buffer.from("de"))]);
    const got = count(split(wire, [1]));
    // the second frame's last byte is the last chunk; the first's is the 8th
    expect(got.flatMap((n, i) => (n > 0 ? [[i, n]] : []))).toEqual([
      [7, 3],
      [14, 2],
    ]);
  });

  it("reads lengths beyond 2^31 without going negative", () => {
    const counter = new MessageByteCounter();
    expect(counter.push(Buffer.from([0, 0xff, 0xff, 0xff, 0xfe, 1, 2]))).toBe(0);
    // the rest of the body never comes: nothing was counted, and nothing was held
    expect(counter.push(Buffer.alloc(16))).toBe(0);
  });

  it("counts the same bytes whatever the chunking (property)", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(
            fc.constantFrom(0, FLAG_COMPRESSED, FLAG_TRAILERS, FLAG_END_STREAM),
            fc.uint8Array({ maxLength: 300 }),
          ),
          { maxLength: 8 },
        ),
        fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 10 }),
        (frames, sizes) => {
          const wire = Buffer.concat(frames.map(([f, b]) => encodeEnvelope(b, f)));
          const expected = frames
            .filter(([f]) => (f & (FLAG_TRAILERS | FLAG_END_STREAM)) === 0)
            .reduce((n, [, b]) => n + b.length, 0);
          const total = count(split(wire, sizes)).reduce((a, b) => a + b, 0);
          expect(total).toBe(expected);
        },
      ),
    );
  });
});
