import fc from "fast-check";
import { afterEach, describe, expect, it, vi } from "vitest";
import { isCode } from "../errors/code.ts";
import { WeftError } from "../errors/weft-error.ts";
import { FrameDecoder } from "./decode.ts";
import { encodeFrame } from "./encode.ts";
import { type Frame, type FrameLimits, HEADER_SIZE } from "./frame.ts";
import vectors from "./golden-vectors.json" with { type: "json" };

// Small limits so random lengths hit them often; fixed seeds keep the suite deterministic.
const LIMITS: FrameLimits = { maxFrameBytes: 2048, maxMetadataBytes: 256 };
const SEED = 0x57460002;
const RUNS = 400;

const FATAL = new Set(["BAD_MAGIC", "UNSUPPORTED_VERSION"]);
const NON_FATAL = new Set(["METADATA_TOO_LARGE", "FRAME_TOO_LARGE", "MALFORMED_METADATA"]);

/** Every error reason the fuzzers provoked, to show they reach each path. */
const seen = new Set<string>();

const valid = Buffer.concat([
  ...vectors.map((v) => Buffer.from(v.hex, "hex")),
  encodeFrame(3, 0, 42, 2, 0, [["k", "v".repeat(200)]], Buffer.alloc(1500, 7)),
]);

/**
 * Feeds `chunks` to a fresh decoder and checks the fuzzing contract after every push: nothing
 * throws, every report is a frame within the limits or a typed WeftError, nothing is reported after
 * a fatal error, and the decoder never holds more than one frame's worth of bytes.
 */
function feed(chunks: Uint8Array[]): { frames: number; errors: number } {
  let frames = 0;
  let errors = 0;
  let dead = false;
  const onFrame = (f: Frame) => {
    expect(dead).toBe(false);
    const copy = encodeFrame(f.type, f.flags, f.streamId, f.serializer, f.compressor, f.metadata, f.body);
    const metaLength = copy.readUInt32BE(12);
    expect(metaLength).toBeLessThanOrEqual(LIMITS.maxMetadataBytes);
    expect(metaLength + f.body.length).toBeLessThanOrEqual(LIMITS.maxFrameBytes);
    frames++;
  };
  const d = new FrameDecoder(
    onFrame,
    (info) => {
      expect(dead).toBe(false);
      expect(info.error).toBeInstanceOf(WeftError);
      expect(isCode(info.error.code)).toBe(true);
      seen.add(info.error.reason);
      if (info.fatal) {
        expect(FATAL.has(info.error.reason)).toBe(true);
        dead = true;
      } else {
        expect(NON_FATAL.has(info.error.reason)).toBe(true);
      }
      errors++;
    },
    LIMITS,
  );
  for (const c of chunks) {
    d.push(c);
    expect(d.buffered).toBeLessThanOrEqual(Math.max(HEADER_SIZE - 1, LIMITS.maxFrameBytes));
    expect(d.dead).toBe(dead);
  }
  return { frames, errors };
}

function split(bytes: Uint8Array, sizes: number[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let at = 0;
  let i = 0;
  while (at < bytes.length) {
    const n = sizes.length === 0 ? bytes.length : 1 + (sizes[i++ % sizes.length]! % 97);
    out.push(bytes.subarray(at, at + n));
    at += n;
  }
  return out;
}

const sizes = fc.array(fc.nat(), { maxLength: 20 });

/** A mutation of the valid stream: overwrite, insert, delete, or truncate. */
const mutated = fc
  .array(
    fc.record({
      op: fc.constantFrom("set", "insert", "delete", "truncate"),
      at: fc.nat(),
      bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }),
    }),
    { minLength: 1, maxLength: 6 },
  )
  .map((mutations) => {
    let b = Buffer.from(valid);
    for (const m of mutations) {
      const at = m.at % (b.length + 1);
      switch (m.op) {
        case "set":
          b.set(m.bytes.subarray(0, Math.max(0, b.length - at)), at);
          break;
        case "insert":
          b = Buffer.concat([b.subarray(0, at), m.bytes, b.subarray(at)]);
          break;
        case "delete":
          b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.bytes.length)]);
          break;
        case "truncate":
          b = b.subarray(0, at);
          break;
      }
    }
    return b;
  });

afterEach(() => {
  vi.restoreAllMocks();
});

describe("FrameDecoder fuzzing", () => {
  it("survives random bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 4096 }), sizes, (bytes, s) => {
        feed(split(bytes, s));
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it("survives random headers behind a valid magic and version", () => {
    const prefix = Buffer.from([0x57, 0x46, 0x01]);
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ minLength: 17, maxLength: 400 }), { minLength: 1, maxLength: 8 }),
        sizes,
        (parts, s) => {
          feed(split(Buffer.concat(parts.flatMap((p) => [prefix, p])), s));
        },
      ),
      { seed: SEED + 1, numRuns: RUNS },
    );
  });

  it("survives mutated valid streams", () => {
    const allocUnsafe = vi.spyOn(Buffer, "allocUnsafe");
    let frames = 0;
    let errors = 0;
    fc.assert(
      fc.property(mutated, sizes, (bytes, s) => {
        const r = feed(split(bytes, s));
        frames += r.frames;
        errors += r.errors;
      }),
      { seed: SEED + 2, numRuns: RUNS },
    );
    // Whatever the lengths said, no allocation exceeded the frame limit.
    for (const [size] of allocUnsafe.mock.calls) expect(size).toBeLessThanOrEqual(LIMITS.maxFrameBytes);
    // The mutations exercise both paths, not only the fatal one.
    expect(frames).toBeGreaterThan(RUNS);
    expect(errors).toBeGreaterThan(0);
  });

  it("survives valid frames with garbage lengths in the header", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.uint8Array({ maxLength: 3000 }),
        sizes,
        (metaLength, bodyLength, tail, s) => {
          const head = Buffer.from(vectors[0]!.hex, "hex").subarray(0, HEADER_SIZE);
          head.writeUInt32BE(metaLength, 12);
          head.writeUInt32BE(bodyLength, 16);
          feed(split(Buffer.concat([head, tail, valid]), s));
        },
      ),
      { seed: SEED + 3, numRuns: RUNS },
    );
  });

  it("reached every error path", () => {
    expect([...seen].sort()).toEqual([...FATAL, ...NON_FATAL].sort());
  });
});
