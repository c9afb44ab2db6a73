import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { Code } from "../errors/code.ts";
import { WeftError } from "../errors/weft-error.ts";
import { Metadata } from "../metadata/metadata.ts";
import { type DecodeErrorInfo, FrameDecoder } from "./decode.ts";
import { encodeFrame } from "./encode.ts";
import {
  DEFAULT_LIMITS,
  Flags,
  type Frame,
  FrameType,
  HEADER_SIZE,
  MAGIC,
  PseudoKey,
  VERSION,
} from "./frame.ts";
import vectors from "./golden-vectors.json" with { type: "json" };

interface PlainFrame {
  type: number;
  flags: number;
  serializer: number;
  compressor: number;
  streamId: number;
  metadata: Array<[string, string]>;
  bodyHex: string;
}

function plain(f: Frame): PlainFrame {
  return {
    type: f.type,
    flags: f.flags,
    serializer: f.serializer,
    compressor: f.compressor,
    streamId: f.streamId,
    metadata: f.metadata,
    bodyHex: Buffer.from(f.body).toString("hex"),
  };
}

function encodePlain(f: PlainFrame): Buffer {
  return encodeFrame(
    f.type,
    f.flags,
    f.streamId,
    f.serializer,
    f.compressor,
    f.metadata,
    Buffer.from(f.bodyHex, "hex"),
  );
}

function decodeAll(bytes: Uint8Array): { frames: Frame[]; errors: DecodeErrorInfo[] } {
  const frames: Frame[] = [];
  const errors: DecodeErrorInfo[] = [];
  const decoder = new FrameDecoder(
    (f) => frames.push(f),
    (e) => errors.push(e),
  );
  decoder.push(bytes);
  expect(decoder.buffered).toBe(0);
  return { frames, errors };
}

const golden = vectors as Array<{ name: string; description: string; hex: string; frame: PlainFrame }>;

describe("header constants", () => {
  it("match the documented layout", () => {
    expect(Buffer.from([MAGIC >> 8, MAGIC & 0xff]).toString("latin1")).toBe("WF");
    expect(VERSION).toBe(1);
    expect(HEADER_SIZE).toBe(20);
    expect(DEFAULT_LIMITS).toEqual({ maxFrameBytes: 4 * 1024 * 1024, maxMetadataBytes: 16 * 1024 });
    expect(Object.isFrozen(DEFAULT_LIMITS)).toBe(true);
    expect(PseudoKey).toEqual({ path: ":path", timeout: ":timeout" });
  });

  it("assign the documented frame type and flag numbers", () => {
    expect(FrameType).toEqual({
      REQUEST: 1,
      RESPONSE: 2,
      MESSAGE: 3,
      END: 4,
      CANCEL: 5,
      PING: 6,
      PONG: 7,
      GOAWAY: 8,
      CREDIT: 9,
      HEADERS: 10,
    });
    expect(Flags).toEqual({ END_STREAM: 1, ONE_WAY: 2 });
  });

  it("puts every field at its offset, big-endian", () => {
    const b = encodeFrame(0xab, 0xcd, 0x01020304, 0xef, 0x12, [["k", "v"]], Buffer.from("body"));
    expect(b.length).toBe(HEADER_SIZE + 6 + 4);
    expect(b.readUInt16BE(0)).toBe(MAGIC);
    expect(b[2]).toBe(VERSION);
    expect(b[3]).toBe(0xab);
    expect(b[4]).toBe(0xcd);
    expect(b[5]).toBe(0xef);
    expect(b[6]).toBe(0x12);
    expect(b[7]).toBe(0);
    expect(b.subarray(8, 12).toString("hex")).toBe("01020304");
    expect(b.readUInt32BE(12)).toBe(6);
    expect(b.readUInt32BE(16)).toBe(4);
    expect(b.subarray(20).toString("hex")).toBe(
      `0001${"6b"}0001${"76"}${Buffer.from("body").toString("hex")}`,
    );
  });
});

describe("golden vectors", () => {
  it("cover every frame kind the spec asks for", () => {
    const names = golden.map((v) => v.name);
    expect(new Set(names).size).toBe(names.length);
    const types = new Set(golden.map((v) => v.frame.type));
    for (const t of [
      FrameType.REQUEST,
      FrameType.RESPONSE,
      FrameType.MESSAGE,
      FrameType.END,
      FrameType.CANCEL,
      FrameType.PING,
      FrameType.GOAWAY,
      FrameType.CREDIT,
    ]) {
      expect(types).toContain(t);
    }
    expect(golden.some((v) => v.frame.flags & Flags.ONE_WAY)).toBe(true);
    expect(golden.some((v) => v.frame.type === FrameType.MESSAGE && v.frame.flags & Flags.END_STREAM)).toBe(
      true,
    );
  });

  for (const v of golden) {
    describe(v.name, () => {
      it("encodes to the recorded hex", () => {
        expect(encodePlain(v.frame).toString("hex")).toBe(v.hex);
      });

      it("decodes from the recorded hex", () => {
        const { frames, errors } = decodeAll(Buffer.from(v.hex, "hex"));
        expect(errors).toEqual([]);
        expect(frames.map(plain)).toEqual([v.frame]);
      });
    });
  }

  it("are the ones printed in docs/protocol.md", () => {
    const doc = readFileSync(new URL("../../../../docs/protocol.md", import.meta.url), "utf8");
    // The doc wraps long hex over several lines; compare with whitespace removed.
    const flat = doc.replace(/\s+/g, "");
    for (const v of golden) {
      expect(doc, `doc names vector ${v.name}`).toContain(v.name);
      expect(flat.includes(v.hex), `doc carries the hex of ${v.name}`).toBe(true);
    }
  });
});

describe("encodeFrame", () => {
  it("round-trips through the decoder", () => {
    const metadata: Array<[string, string]> = [
      [":path", "/svc.v1.Orders/Get"],
      ["x-empty", ""],
      ["x-unicode", "naïve ☃ 🧵"],
      ["x-dup", "1"],
      ["x-dup", "2"],
    ];
    const body = Buffer.from(Array.from({ length: 300 }, (_, i) => i & 0xff));
    const bytes = encodeFrame(FrameType.MESSAGE, Flags.END_STREAM, 0xffffffff, 3, 2, metadata, body);
    const { frames } = decodeAll(bytes);
    expect(frames.map(plain)).toEqual([
      {
        type: FrameType.MESSAGE,
        flags: Flags.END_STREAM,
        serializer: 3,
        compressor: 2,
        streamId: 0xffffffff,
        metadata,
        bodyHex: body.toString("hex"),
      },
    ]);
  });

  it("treats missing metadata and body as empty", () => {
    const a = encodeFrame(FrameType.CANCEL, 0, 7, 0, 0, undefined, undefined);
    const b = encodeFrame(FrameType.CANCEL, 0, 7, 0, 0, [], new Uint8Array(0));
    expect(a.length).toBe(HEADER_SIZE);
    expect(a.equals(b)).toBe(true);
  });

  it("accepts any iterable of entries, such as a Metadata or a Map", () => {
    const md = new Metadata({ "X-A": "1", "x-b": "2" });
    const fromMd = encodeFrame(FrameType.HEADERS, 0, 1, 0, 0, md, undefined);
    const fromMap = encodeFrame(
      FrameType.HEADERS,
      0,
      1,
      0,
      0,
      new Map([
        ["x-a", "1"],
        ["x-b", "2"],
      ]),
      undefined,
    );
    expect(fromMd.equals(fromMap)).toBe(true);
    expect(decodeAll(fromMd).frames[0]!.metadata).toEqual([
      ["x-a", "1"],
      ["x-b", "2"],
    ]);
  });

  it("accepts a one-shot iterable (a generator), whose entries can be read only once", () => {
    function* entries(): Generator<[string, string]> {
      yield ["x-a", "1"];
      yield ["x-b", "é"];
    }
    // poison the pool allocUnsafe draws from: a frame that skipped the metadata would show it
    Buffer.allocUnsafe(4096).fill(0xee);
    const fromGenerator = encodeFrame(FrameType.HEADERS, 0, 1, 0, 0, entries(), undefined);
    const fromArray = encodeFrame(FrameType.HEADERS, 0, 1, 0, 0, [...entries()], undefined);
    expect(fromGenerator.equals(fromArray)).toBe(true);
    expect(decodeAll(fromGenerator).frames[0]!.metadata).toEqual([
      ["x-a", "1"],
      ["x-b", "é"],
    ]);
  });

  it("counts metadata lengths in UTF-8 bytes, not UTF-16 units", () => {
    const b = encodeFrame(FrameType.HEADERS, 0, 1, 0, 0, [["k", "é🧵"]], undefined);
    // 2 + 1 + 2 + (2 + 4)
    expect(b.readUInt32BE(12)).toBe(11);
    expect(b.readUInt16BE(23)).toBe(6);
  });

  it("rejects a metadata key or value over 65535 bytes", () => {
    const long = "x".repeat(0x10000);
    for (const entry of [
      [long, "v"],
      ["k", long],
    ] as Array<[string, string]>) {
      let caught: unknown;
      try {
        encodeFrame(FrameType.REQUEST, 0, 1, 0, 0, [entry], undefined);
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(WeftError);
      expect((caught as WeftError).code).toBe(Code.INVALID_ARGUMENT);
      expect((caught as WeftError).reason).toBe("METADATA_TOO_LARGE");
    }
    // 65535 bytes exactly is fine.
    const max = encodeFrame(FrameType.REQUEST, 0, 1, 0, 0, [["k", "x".repeat(0xffff)]], undefined);
    expect(max.readUInt32BE(12)).toBe(2 + 1 + 2 + 0xffff);
  });

  it("rejects an empty metadata key, which no decoder would accept", () => {
    expect(() => encodeFrame(FrameType.REQUEST, 0, 1, 0, 0, [["", "v"]], undefined)).toThrow(
      expect.objectContaining({ code: Code.INVALID_ARGUMENT, reason: "MALFORMED_METADATA" }),
    );
  });

  it("copies the body, so later changes to the caller's buffer do not leak into the frame", () => {
    const body = Buffer.from("abc");
    const frame = encodeFrame(FrameType.MESSAGE, 0, 1, 0, 0, undefined, body);
    body[0] = 0x7a;
    expect(frame.subarray(HEADER_SIZE).toString()).toBe("abc");
  });
});
