import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type DecodeErrorInfo, FrameDecoder } from "./decode.ts";
import { encodeFrame } from "./encode.ts";
import type { Frame } from "./frame.ts";

// Fixed seeds keep the suite deterministic; change a seed locally to explore further.
const SEED = 0x57460001;

interface PlainFrame {
  type: number;
  flags: number;
  serializer: number;
  compressor: number;
  streamId: number;
  metadata: Array<[string, string]>;
  body: string;
}

const u8 = fc.integer({ min: 0, max: 0xff });
// `binary` strings are any Unicode scalar values (no lone surrogates), which UTF-8 carries exactly.
const key = fc.string({ unit: "binary", minLength: 1, maxLength: 24 });
const value = fc.string({ unit: "binary", maxLength: 48 });

const frameArb: fc.Arbitrary<PlainFrame> = fc.record({
  type: u8,
  flags: u8,
  serializer: u8,
  compressor: u8,
  streamId: fc.integer({ min: 0, max: 0xffffffff }),
  metadata: fc.array(fc.tuple(key, value), { maxLength: 6 }),
  body: fc.uint8Array({ maxLength: 3000 }).map((b) => Buffer.from(b).toString("hex")),
});

function encode(f: PlainFrame): Buffer {
  return encodeFrame(
    f.type,
    f.flags,
    f.streamId,
    f.serializer,
    f.compressor,
    f.metadata,
    Buffer.from(f.body, "hex"),
  );
}

function plain(f: Frame): PlainFrame {
  return { ...f, body: Buffer.from(f.body).toString("hex") };
}

/** Cuts `bytes` at the given points (taken modulo its length). */
function chunk(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let at = 0;
  for (const p of points) {
    out.push(bytes.subarray(at, p));
    at = p;
  }
  out.push(bytes.subarray(at));
  return out;
}

function decode(chunks: Buffer[]): { frames: Frame[]; errors: DecodeErrorInfo[]; buffered: number } {
  const frames: Frame[] = [];
  const errors: DecodeErrorInfo[] = [];
  const d = new FrameDecoder(
    (f) => frames.push(f),
    (e) => errors.push(e),
  );
  for (const c of chunks) d.push(c);
  return { frames, errors, buffered: d.buffered };
}

describe("encode ∘ decode", () => {
  it("is the identity on frames, under any chunking", () => {
    fc.assert(
      fc.property(
        fc.array(frameArb, { minLength: 1, maxLength: 5 }),
        fc.array(fc.nat(), { maxLength: 30 }),
        (frames, cuts) => {
          const bytes = Buffer.concat(frames.map(encode));
          const { frames: out, errors, buffered } = decode(chunk(bytes, cuts));
          expect(errors).toEqual([]);
          expect(buffered).toBe(0);
          expect(out.map(plain)).toEqual(frames);
        },
      ),
      { seed: SEED, numRuns: 300 },
    );
  });

  it("is the identity on the bytes of valid frames (decode then encode gives them back)", () => {
    fc.assert(
      fc.property(frameArb, fc.array(fc.nat(), { maxLength: 8 }), (frame, cuts) => {
        const bytes = encode(frame);
        const { frames } = decode(chunk(bytes, cuts));
        expect(frames).toHaveLength(1);
        const f = frames[0]!;
        const again = encodeFrame(
          f.type,
          f.flags,
          f.streamId,
          f.serializer,
          f.compressor,
          f.metadata,
          f.body,
        );
        expect(again.equals(bytes)).toBe(true);
      }),
      { seed: SEED + 1, numRuns: 200 },
    );
  });

  it("does not depend on how a stream is cut: byte-by-byte equals all-at-once", () => {
    fc.assert(
      fc.property(fc.array(frameArb, { minLength: 1, maxLength: 3 }), (frames) => {
        const bytes = Buffer.concat(frames.map(encode));
        const whole = decode([bytes]).frames.map(plain);
        const bytewise = decode(Array.from({ length: bytes.length }, (_, i) => bytes.subarray(i, i + 1)));
        expect(bytewise.frames.map(plain)).toEqual(whole);
      }),
      { seed: SEED + 2, numRuns: 50 },
    );
  });
});
